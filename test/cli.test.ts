/**
 * The command line as users and scripts see it: help and version everywhere,
 * the JSON shapes, exit statuses, and `path`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, ROOT, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

describe('reposnap CLI', () => {
  it('prints --help and --version for the program and every command, exit 0', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const v = await runCli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(pkg.version);
    for (const args of [['--help'], ['sync', '--help'], ['status', '--help'], ['path', '--help'], ['help', 'sync']]) {
      const r = await runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: reposnap/);
    }
  });

  it('sync, status --json (stable shape) and path', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { 'cat/pkg/pkg-1.ebuild': 'x\n', 'metadata/timestamp.chk': 'T\n' });
    const conf = await writeConf(dir, rcuConf(dir));

    const sync = await runCli(['-c', conf, 'sync', '--json']);
    expect(sync.code).toBe(0);
    const report = (JSON.parse(sync.stdout) as { results: Array<Record<string, unknown>> }).results[0];
    expect(report).toMatchObject({ repo: 'test', mode: 'rcu', outcome: 'updated', snapshot: { id: 1 }, backend: 'hardlink' });
    expect(report?.timings).toMatchObject({ fetchMs: expect.any(Number), commitMs: expect.any(Number), gcMs: expect.any(Number) });

    const st = await runCli(['-c', conf, 'status', '--json']);
    expect(st.code).toBe(0);
    const status = (JSON.parse(st.stdout) as { results: { repos: Array<Record<string, unknown>> } }).results;
    const repo = status.repos[0] as Record<string, unknown>;
    expect(repo).toMatchObject({
      name: 'test',
      mode: 'rcu',
      backend: 'hardlink',
      location: path.join(dir, 'repo'),
      current: { id: 1, path: path.join(dir, 'store', 'snapshots', '1'), committedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) },
      snapshots: [{ id: 1, committedAt: expect.any(String) }],
    });

    const human = await runCli(['-c', conf, 'status']);
    expect(human.stdout).toMatch(/^test {2}\(rcu, hardlink\)/);
    expect(human.stdout).toMatch(/current {4}snapshot 1, committed/);

    const p = await runCli(['-c', conf, 'path', 'test']);
    expect(p.code).toBe(0);
    expect(p.stdout).toBe(`${path.join(dir, 'store', 'snapshots', '1')}\n`);
  });

  it('syncs only auto-sync repos when none is named, and a named one regardless', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'auto-sync = no'));
    const none = await runCli(['-c', conf, 'sync']);
    expect(none.code).toBe(0);
    expect(none.stdout).toMatch(/nothing to sync/);
    await expect(fs.lstat(path.join(dir, 'repo'))).rejects.toThrow();
    const named = await runCli(['-c', conf, 'sync', 'test']);
    expect(named.code).toBe(0);
    expect(named.stdout).toMatch(/updated to snapshot 1/);
  });

  it('is quiet in scripts: no progress on a pipe, nothing at all with --quiet', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const q = await runCli(['-c', conf, '--quiet', 'sync']);
    expect(q.code).toBe(0);
    expect(q.stdout).toBe('');
    expect(q.stderr).toBe('');
  });

  it('path fails clearly for a repo that was never synced', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, rcuConf(dir));
    const r = await runCli(['-c', conf, 'path', 'test']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`reposnap: repo test: location ${path.join(dir, 'repo')} has not been synced yet (or its store is gone)\n`);
  });

  it('gc skips a repo that was never synced with a note, beside one that was', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const fresh = rcuConf(dir).replace('[test]', '[fresh]').replace(`${path.join(dir, 'repo')}`, path.join(dir, 'fresh')).replace(`${path.join(dir, 'store')}`, path.join(dir, 'fresh-store'));
    const conf = await writeConf(dir, `${rcuConf(dir)}\n${fresh}`);
    expect((await runCli(['-c', conf, 'sync', 'test'])).code).toBe(0);
    for (const args of [['gc'], ['gc', 'fresh'], ['gc', '--dry-run']]) {
      const r = await runCli(['-c', conf, ...args]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('fresh: not synced yet, nothing to collect');
    }
    const j = JSON.parse((await runCli(['-c', conf, 'gc', '--json'])).stdout) as { results: Array<{ repo: string; synced?: boolean }> };
    expect(j.results.map((x) => [x.repo, x.synced ?? true])).toEqual([
      ['test', true],
      ['fresh', false],
    ]);
  });

  it('reads $REPOSNAP_CONFIG when --config is not given', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    const r = await runCli(['status', '--json'], { env: { REPOSNAP_CONFIG: conf } });
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { results: { repos: Array<{ name: string }> } }).results.repos[0]?.name).toBe('test');
  });
});

describe('progress and the library from options', () => {
  it('draws progress on a terminal and clears it; nothing with --quiet', async () => {
    const dir = tmpdir();
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`c${i % 10}/p${i}`] = `${i}\n`;
    await writeTree(path.join(dir, 'upstream'), files);
    const conf = await writeConf(dir, rcuConf(dir));
    // script(1) gives the CLI a pseudo-terminal.
    const { execFileSync } = await import('node:child_process');
    const onTty = execFileSync('script', ['-qec', `${process.execPath} ${path.join(ROOT, 'dist/cli/main.js')} -c ${conf} sync`, '/dev/null'], { encoding: 'utf8' });
    expect(onTty).toMatch(/test: (starting|preparing|planning|cloning|filling|committing)/);
    expect(onTty).toContain('\r\x1b[K');
    expect(onTty).toMatch(/test: updated to snapshot 1/);
    const quiet = execFileSync('script', ['-qec', `${process.execPath} ${path.join(ROOT, 'dist/cli/main.js')} -q -c ${conf} sync`, '/dev/null'], { encoding: 'utf8' });
    expect(quiet).toBe('');
  });

  it('opens repositories from options with the same validation', async () => {
    const { Repos } = await import('../src/repos.js');
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const repos = Repos.fromOptions([
      { name: 'opt', location: `${dir}/repo`, 'sync-type': 'local', 'sync-uri': `${dir}/upstream`, 'sync-rcu': true, 'sync-rcu-store-dir': `${dir}/store` },
    ]);
    const r = await repos.get('opt').sync();
    expect(r.snapshot?.id).toBe(1);
    expect(() => Repos.fromOptions([{ name: 'bad', location: '/x', 'sync-rcu': true }])).toThrow(/<options>: \[bad\] sync-rcu-store-dir: missing/);
  });
});
