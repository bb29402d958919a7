/**
 * Portage repos.conf parity: sync-verify-command, post-sync hooks with
 * sync-hooks-only-on-change, sync-umask, sync-user, auto-sync.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import type { CommandOutput } from '../src/repository.js';
import { LineReader } from '../src/util/process.js';
import { isRoot, rcuConf, readTree, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

async function setup(extra: string, type = 'local') {
  const dir = tmpdir();
  const up = path.join(dir, 'upstream');
  await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n' });
  const conf = await writeConf(dir, rcuConf(dir, extra, type, up));
  return { dir, up, conf };
}

describe('sync-verify-command', () => {
  it('runs in the update before commit; non-zero commits nothing, keeps the update, exits 1', async () => {
    const { dir, up, conf } = await setup('sync-verify-command = test -f metadata/timestamp.chk && ! grep -q BAD metadata/timestamp.chk');
    const ok = await runCli(['-c', conf, 'sync']);
    expect(ok.code).toBe(0);

    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'BAD\n');
    const bad = await runCli(['-c', conf, 'sync']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^reposnap: repo test: sync-verify-command failed \(exit 1\); nothing committed, the update is kept in (\S+) for inspection\n$/);
    const kept = /kept in (\S+) for/.exec(bad.stderr)?.[1] as string;
    expect(await fs.readFile(path.join(kept, 'metadata/timestamp.chk'), 'utf8')).toBe('BAD\n');
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
  });

  it('keeps a quarantine that failed verification', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, { f: 'x\n' });
    const conf = await writeConf(dir, `[test]\nlocation = ${dir}/repo\nsync-type = local\nsync-uri = ${up}\nsync-verify-command = false\n`);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(await fs.readFile(path.join(dir, 'repo', '.tmp-unverified-download-quarantine', 'f'), 'utf8')).toBe('x\n');
    await expect(fs.lstat(path.join(dir, 'repo', 'f'))).rejects.toThrow();
  });
});

describe('post-sync hooks', () => {
  async function hooks(dir: string): Promise<string> {
    const d = path.join(dir, 'postsync.d');
    const log = path.join(dir, 'hooks.log');
    await writeTree(d, {
      '10-first': { content: `#!/bin/sh\necho "first $1 $2 $3 $REPOSNAP_SNAPSHOT_ID $(cat "$REPOSNAP_SNAPSHOT/metadata/timestamp.chk")" >> ${log}\n`, mode: 0o755 },
      '20-second': { content: `#!/bin/sh\necho "second $1" >> ${log}\n`, mode: 0o755 },
      'README': { content: 'not executable\n', mode: 0o644 },
      '.hidden': { content: `#!/bin/sh\necho hidden >> ${log}\n`, mode: 0o755 },
    });
    return log;
  }

  it('run in lexical order with repo, sync-uri and location, holding a lease on the new snapshot', async () => {
    const { dir, up, conf } = await setup('');
    const log = await hooks(dir);
    await fs.appendFile(conf, `sync-hooks-dir = ${dir}/postsync.d\n`);
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect(await fs.readFile(log, 'utf8')).toBe(`first test ${up} ${dir}/repo 1 T1\nsecond test\n`);
    // Without sync-hooks-only-on-change they run after a no-op sync too.
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect((await fs.readFile(log, 'utf8')).split('\n').filter(Boolean)).toHaveLength(4);
  });

  it('with sync-hooks-only-on-change run only when something changed; a failing hook fails the sync', async () => {
    const { dir, up, conf } = await setup('sync-hooks-only-on-change = yes');
    const log = await hooks(dir);
    await fs.appendFile(conf, `sync-hooks-dir = ${dir}/postsync.d\n`);
    await runCli(['-c', conf, 'sync']);
    await runCli(['-c', conf, 'sync']);
    expect((await fs.readFile(log, 'utf8')).split('\n').filter(Boolean)).toHaveLength(2);

    await writeTree(path.join(dir, 'postsync.d'), { '30-fails': { content: '#!/bin/sh\nexit 3\n', mode: 0o755 } });
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/updated to snapshot 2/);
    expect(r.stderr).toMatch(/post-sync hook .*30-fails failed \(exit 3\)/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/2');
  });
});

describe('the output of hooks and sync-verify-command, to a listener', () => {
  it('goes to onCommandOutput a line at a time, named by command and stream', async () => {
    const { dir, conf } = await setup('sync-verify-command = echo checked; echo odd >&2');
    await writeTree(path.join(dir, 'postsync.d'), { '10-talk': { content: '#!/bin/sh\necho "one $1"\necho two >&2\nprintf \'caf\\351\\n\'\nprintf three\n', mode: 0o755 } });
    await fs.appendFile(conf, `sync-hooks-dir = ${dir}/postsync.d\n`);
    const said: CommandOutput[] = [];
    const report = await Repos.load({ path: conf }).get('test').sync({ onCommandOutput: (o) => said.push(o) });
    expect(report.hooks).toMatchObject([{ status: 0 }]);
    const hook = path.join(dir, 'postsync.d', '10-talk');
    // Each stream's lines in their order (between the two streams, as they arrive).
    const lines = (command: string, stream: string): string[] => said.filter((o) => o.command === command && o.stream === stream).map((o) => o.line);
    for (const o of said) expect(o).toMatchObject({ repo: 'test', name: o.command === 'hook' ? hook : 'echo checked; echo odd >&2' });
    expect(lines('verify', 'stdout')).toEqual(['checked']);
    expect(lines('verify', 'stderr')).toEqual(['odd']);
    expect(lines('hook', 'stdout')).toEqual(['one test', 'caf\ufffd', 'three']);
    expect(lines('hook', 'stderr')).toEqual(['two']);
    // The bytes as written, beside the decoded line.
    expect(said.find((o) => o.line === 'caf\ufffd')?.bytes).toEqual(Buffer.from('caf\xe9', 'latin1'));
    expect(said.find((o) => o.line === 'three')?.bytes).toEqual(Buffer.from('three'));
    expect(said).toHaveLength(6);
  });
});

describe('a command\'s output split into lines as bytes', () => {
  it('cuts at newlines only, whatever the chunks: a character split between two comes whole, nothing is decoded', () => {
    const got: Buffer[] = [];
    const r = new LineReader((l) => got.push(Buffer.from(l)));
    const notUtf8 = Buffer.from([0xff, 0xfe]);
    const text = Buffer.concat([Buffer.from('caf\u00e9\n\nsecond\r\n'), notUtf8, Buffer.from(' raw\nlast')]);
    // Every byte alone: the worst chunking a pipe can give.
    for (let i = 0; i < text.length; i++) r.push(text.subarray(i, i + 1));
    r.end();
    r.end();
    expect(got).toEqual([Buffer.from('caf\u00e9'), Buffer.alloc(0), Buffer.from('second\r'), Buffer.concat([notUtf8, Buffer.from(' raw')]), Buffer.from('last')]);
  });
});

describe('sync-umask and sync-user', () => {
  it('sync-umask applies to what the source creates (git checkout)', async () => {
    const dir = tmpdir();
    const work = path.join(dir, 'work');
    await writeTree(work, { 'a/f': 'x\n', 'run.sh': { content: '#!/bin/sh\n', mode: 0o755 } });
    const git = (...a: string[]) => execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@e', ...a], { cwd: work });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'x');
    const conf = await writeConf(dir, rcuConf(dir, 'sync-umask = 027', 'git', `file://${work}`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const t = await readTree(`${dir}/repo/`);
    expect(t['a/f']?.mode).toBe(0o640);
    expect(t['run.sh']?.mode).toBe(0o750);
    expect(t.a?.mode).toBe(0o750);
  });

  it.skipIf(!isRoot)('sync-user fetches as that user; what it made is given back to the store owner before commit', async () => {
    const dir = tmpdir();
    await fs.chmod(dir, 0o755);
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'open/f': 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-user = nobody:nogroup', 'rsync', up));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Fetched as nobody, published as the store's owner (root): nobody must
    // not be able to change what root reads.
    const st = await fs.stat(path.join(dir, 'store', 'snapshots', '1', 'open', 'f'));
    expect([st.uid, st.gid]).toEqual([0, 0]);

    // A file only root may read: rsync running as nobody cannot fetch it.
    await writeTree(up, { 'secret/key': 'k\n' });
    await fs.chmod(path.join(up, 'secret/key'), 0o600);
    const denied = await runCli(['-c', conf, 'sync']);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/rsync failed \(exit 23.*Permission denied/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it.skipIf(!isRoot)('a sync worker that fails before it can answer says why, in the one line of the error', async () => {
    const dir = tmpdir();
    await fs.chmod(dir, 0o755);
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'a/f': 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-user = nobody:nogroup', 'rsync', up));
    // setpriv cannot switch to the user (as in a container without the
    // capability); the other uses of setpriv go to the real one.
    const realSetpriv = execFileSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).trim();
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    await fs.writeFile(
      path.join(bin, 'setpriv'),
      `#!/bin/sh\ncase " $* " in *" --reuid="*) echo "setpriv: warming up" >&2; printf 'setpriv: setresuid failed: \\033[31mOperation not permitted\\n' >&2; exit 1;; esac\nexec ${realSetpriv} "$@"\n`,
      { mode: 0o755 },
    );
    const r = await runCli(['-c', conf, 'sync'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      'reposnap: repo test: the sync worker (running as nobody) failed (exit 1): setpriv: setresuid failed: \\x1b[31mOperation not permitted',
    ]);
    await expect(fs.lstat(path.join(dir, 'store', 'snapshots', '1'))).rejects.toThrow();
  });

  it('refuses an unknown sync-user as a configuration error at its line, before touching anything', async () => {
    if (!isRoot) return;
    const { conf } = await setup('sync-user = no-such-user-here');
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repos\.conf:\d+: \[test\] sync-user: no such user "no-such-user-here"/);
    await expect(fs.lstat(path.join(path.dirname(conf), 'store'))).rejects.toThrow();
  });
});
