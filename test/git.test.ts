/**
 * The git source with the real git: a local bare repository over file://,
 * `git daemon` on 127.0.0.1, an HTTP endpoint that demands credentials, and
 * the failures users meet (missing branch, unreachable remote).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { readMeta } from '../src/store/metadata.js';
import { freePort, rcuConf, readTree, runCli, tmpdir, waitForPort, writeConf, writeTree } from './helpers.js';

const procs: ChildProcess[] = [];
afterAll(() => {
  for (const p of procs) p.kill('SIGTERM');
});

function g(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.org', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
  }).trim();
}

/** A work repo plus a bare repo it pushes to; returns helpers. */
async function upstream(dir: string) {
  const work = path.join(dir, 'work');
  const bare = path.join(dir, 'up.git');
  await fs.mkdir(work);
  g(work, 'init', '-q');
  await writeTree(work, {
    'metadata/timestamp.chk': 'T1\n',
    'cat/pkg/pkg-1.ebuild': 'EAPI=8\n',
    'cat/pkg/Manifest': 'DIST x\n',
    'eclass/e.eclass': 'eclass\n',
    'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    'link': { symlink: 'cat/pkg' },
    'becomes-dir': 'a file for now\n',
  });
  g(work, 'add', '-A');
  g(work, 'commit', '-qm', 'one');
  g(dir, 'clone', '-q', '--bare', work, bare);
  g(work, 'remote', 'add', 'origin', bare);
  const commit = async (msg: string): Promise<string> => {
    g(work, 'add', '-A');
    g(work, 'commit', '-qm', msg);
    g(work, 'push', '-q', 'origin', 'HEAD:main');
    return g(work, 'rev-parse', 'HEAD');
  };
  /** The tree a git checkout of `rev` gives under umask 022. */
  const checkout = async (rev: string): Promise<string> => {
    const out = path.join(dir, `expected-${rev.slice(0, 8)}-${Math.random().toString(36).slice(2)}`);
    await fs.mkdir(out);
    execFileSync('sh', ['-c', `git --git-dir=${bare} archive ${rev} | tar -x --no-same-permissions -C ${out}`]);
    return out;
  };
  return { work, bare, commit, checkout, head: () => g(work, 'rev-parse', 'HEAD') };
}


describe('git source', () => {
  it('checks out the first commit, then applies only the difference; no .git; commit id recorded', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-spare-snapshots = 5', 'git', `file://${up.bare}`), path.join(dir, 'repos.conf')).get('test');
    const layout = new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo'));

    const r1 = await repo.sync();
    expect(r1.snapshot?.id).toBe(1);
    const first = up.head();
    expect(await readTree(layout.snapshot(1))).toEqual(await readTree(await up.checkout(first)));
    expect((await readMeta(layout, 1))?.revision).toBe(first);
    expect((await repo.status()).snapshots[0]?.revision).toBe(first);
    // The mirror lives in the store, outside snapshots/.
    expect(await fs.readdir(path.join(dir, 'store', 'reposnap', 'cache', 'git'))).toContain('HEAD');

    // Same commit upstream: no new snapshot, and no tree cloned to find out.
    const same = await repo.sync();
    expect(same.outcome).toBe('up-to-date');
    expect(same.unchangedBeforeClone).toBe(true);

    // Change, add, delete, chmod, retarget a symlink, turn a file into a directory.
    await fs.writeFile(path.join(up.work, 'metadata/timestamp.chk'), 'T2\n');
    await fs.rm(path.join(up.work, 'becomes-dir'));
    await writeTree(up.work, { 'dev-libs/new/new-1.ebuild': 'new\n', 'becomes-dir/inside': 'now a dir\n', 'link2': { symlink: 'eclass' } });
    await fs.rm(path.join(up.work, 'cat/pkg/Manifest'));
    await fs.rm(path.join(up.work, 'scripts'), { recursive: true }); // its directory must go too
    await fs.chmod(path.join(up.work, 'eclass/e.eclass'), 0o755);
    await fs.rm(path.join(up.work, 'link'));
    await fs.symlink('eclass/e.eclass', path.join(up.work, 'link'));
    const second = await up.commit('two');
    const r2 = await repo.sync();
    expect(r2.snapshot?.id).toBe(2);
    expect(r2.changes.deleted).toBeGreaterThanOrEqual(2);
    expect(await readTree(layout.snapshot(2))).toEqual(await readTree(await up.checkout(second)));
    expect((await readMeta(layout, 2))?.revision).toBe(second);
    // Unchanged files are shared with snapshot 1; changed ones are new files;
    // snapshot 1 is untouched.
    const ino = async (id: number, rel: string) => (await fs.lstat(path.join(layout.snapshot(id), rel))).ino;
    expect(await ino(2, 'cat/pkg/pkg-1.ebuild')).toBe(await ino(1, 'cat/pkg/pkg-1.ebuild'));
    expect(await ino(2, 'metadata/timestamp.chk')).not.toBe(await ino(1, 'metadata/timestamp.chk'));
    expect(await readTree(layout.snapshot(1))).toEqual(await readTree(await up.checkout(first)));
  });

  it('keeps names that are not UTF-8 byte for byte when it applies a difference', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const repo = Repos.fromText(rcuConf(dir, '', 'git', `file://${up.bare}`), path.join(dir, 'repos.conf')).get('test');
    await repo.sync();
    const odd = Buffer.concat([Buffer.from('d-'), Buffer.from([0xff, 0xfe])]);
    await fs.mkdir(Buffer.concat([Buffer.from(`${up.work}/`), odd]));
    await fs.writeFile(Buffer.concat([Buffer.from(`${up.work}/`), odd, Buffer.from('/f-\x80')]), 'odd\n');
    await up.commit('odd names');
    await repo.sync();
    const names = await fs.readdir(Buffer.concat([Buffer.from(`${dir}/repo/`), odd]), { encoding: 'buffer' });
    expect(names.map((n) => n.toString('hex'))).toEqual([Buffer.from('f-\x80').toString('hex')]);
  });

  it('follows sync-git-branch and fails clearly for a branch that does not exist', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    g(up.work, 'checkout', '-q', '-b', 'dev');
    await fs.writeFile(path.join(up.work, 'DEV'), 'dev branch\n');
    g(up.work, 'add', '-A');
    g(up.work, 'commit', '-qm', 'dev');
    g(up.work, 'push', '-q', 'origin', 'dev');
    const conf = await writeConf(dir, rcuConf(dir, 'sync-git-branch = dev', 'git', `file://${up.bare}`));
    const ok = await runCli(['-c', conf, 'sync']);
    expect(ok.code).toBe(0);
    expect(await fs.readFile(path.join(dir, 'repo', 'DEV'), 'utf8')).toBe('dev branch\n');

    await fs.writeFile(conf, rcuConf(dir, 'sync-git-branch = no-such-branch', 'git', `file://${up.bare}`));
    const bad = await runCli(['-c', conf, 'sync']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`reposnap: repo test: git fetch from file://${up.bare} failed: branch "no-such-branch" does not exist\n`);
    expect(await fs.readFile(path.join(dir, 'repo', 'DEV'), 'utf8')).toBe('dev branch\n');
  });

  it('fetches sync-depth commits (default 1; 0 = full history)', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(path.join(up.work, 'metadata/timestamp.chk'), `T${i}\n`);
      await up.commit(`c${i}`);
    }
    const mirror = path.join(dir, 'store', 'reposnap', 'cache', 'git');
    const shallow = Repos.fromText(rcuConf(dir, '', 'git', `file://${up.bare}`), path.join(dir, 'repos.conf')).get('test');
    await shallow.sync();
    expect(g(dir, '--git-dir', mirror, 'rev-list', '--count', 'refs/reposnap/fetched')).toBe('1');
    const full = Repos.fromText(rcuConf(dir, 'sync-depth = 0', 'git', `file://${up.bare}`), path.join(dir, 'repos.conf')).get('test');
    await fs.writeFile(path.join(up.work, 'metadata/timestamp.chk'), 'T9\n');
    await up.commit('c9');
    await full.sync();
    expect(g(dir, '--git-dir', mirror, 'rev-list', '--count', 'refs/reposnap/fetched')).toBe('5');
  });

  it('syncs from git daemon on 127.0.0.1 and fails clearly when it is unreachable', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const port = await freePort();
    const daemon = spawn('git', ['daemon', '--reuseaddr', '--export-all', `--base-path=${dir}`, '--listen=127.0.0.1', `--port=${port}`, dir], { stdio: 'ignore' });
    procs.push(daemon);
    await waitForPort(port);
    const conf = await writeConf(dir, rcuConf(dir, '', 'git', `git://127.0.0.1:${port}/up.git`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await readTree(`${path.join(dir, 'repo')}/`)).toEqual(await readTree(await up.checkout(up.head())));

    daemon.kill('SIGTERM');
    await new Promise((res) => daemon.once('exit', res));
    await fs.writeFile(path.join(up.work, 'metadata/timestamp.chk'), 'T2\n');
    await up.commit('two');
    const down = await runCli(['-c', conf, 'sync']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(new RegExp(`^reposnap: repo test: git fetch from git://127\\.0\\.0\\.1:${port}/up\\.git failed: cannot reach the repository \\(.*\\)\\n$`));
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it('reports an authentication failure without prompting', async () => {
    const dir = tmpdir();
    const server = http.createServer((_req, res) => {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="repos"' });
      res.end('authentication required\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const conf = await writeConf(dir, rcuConf(dir, '', 'git', `http://127.0.0.1:${port}/private.git`));
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^reposnap: repo test: git fetch from http:\/\/127\.0\.0\.1:\d+\/private\.git failed: authentication failed \(/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});
