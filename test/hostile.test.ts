/**
 * Hostile input and misuse, with real processes and a real unprivileged user
 * (nobody) where the case needs one: nothing leaks, nothing published
 * changes, nothing hangs, and every refusal is one clear line.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileLock } from '../src/lock/file-lock.js';
import { containing, HOLDER, RACED_TREE, symlinkRacer } from '../torture/hostile-races.js';
import { isRoot, rcuConf, readTree, runCli, startCli, stopChildren, tmpdir, writeConf, writeTree } from './helpers.js';

const NOBODY = { uid: 65534, gid: 65534 };
const procs: ChildProcess[] = [];
const servers: http.Server[] = [];
afterAll(async () => {
  // Gone, with what they started, before the temporary folders are removed.
  await stopChildren(procs, 'SIGKILL');
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** Run a shell script as nobody, in the background. */
function asNobody(script: string): ChildProcess {
  const child = spawn('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', 'sh', '-c', script], { stdio: 'ignore', detached: true });
  procs.push(child);
  return child;
}

/** Run a shell script as nobody and wait; returns its exit code and output. */
function nobodyDoes(script: string): { code: number; out: string } {
  try {
    const out = execFileSync('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, out };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: `${e.stdout}${e.stderr}` };
  }
}

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe.skipIf(!isRoot)('the local source, as root, on a folder another user controls', () => {
  it('never publishes root-only files however the user swaps entries for symlinks during syncs', { timeout: 120_000 }, async () => {
    const dir = tmpdir('race');
    await fs.chmod(dir, 0o755);
    // Root's secrets: a folder only root can read.
    const secret = path.join(dir, 'secret');
    await writeTree(secret, { 'key-1': 'SECRET root only\n', 'key-2': 'SECRET root only\n' });
    await fs.chmod(secret, 0o700);
    // The user's tree, which the user keeps rewriting and swapping: each
    // file is rewritten (so a sync copies it) and then replaced by a
    // symlink to root's secret; the folder likewise.
    const up = path.join(dir, 'upstream');
    await writeTree(up, RACED_TREE);
    execFileSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, up]);
    const conf = await writeConf(dir, rcuConf(dir, '', 'local', up));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    asNobody(symlinkRacer(up, secret));
    const outcomes = { ok: 0, refused: 0, other: [] as string[] };
    for (let i = 0; i < 25; i++) {
      const r = await runCli(['-c', conf, 'sync']);
      if (r.code === 0) outcomes.ok++;
      else if (/changed while it was read|refusing/.test(r.stderr)) outcomes.refused++;
      else outcomes.other.push(r.stderr.trim());
      expect(await containing(await fs.realpath(path.join(dir, 'repo')), 'SECRET')).toEqual([]);
    }
    expect(outcomes.other.filter((m) => !/cannot (read|copy)|ENOENT/.test(m))).toEqual([]);
    expect(outcomes.ok).toBeGreaterThan(0);
  });

  it('copies a symlink to a root-only file as a symlink, and refuses a source folder a user can replace with a symlink', async () => {
    const dir = tmpdir('links');
    await fs.chmod(dir, 0o755);
    const secret = path.join(dir, 'secret');
    await writeTree(secret, { key: 'SECRET\n' });
    await fs.chmod(secret, 0o700);
    const home = path.join(dir, 'home');
    await writeTree(path.join(home, 'real'), { f: 'x\n' });
    await fs.symlink(path.join(secret, 'key'), path.join(home, 'real', 'key'));
    execFileSync('chown', ['-R', '-h', `${NOBODY.uid}:${NOBODY.gid}`, home]);
    const conf = await writeConf(dir, rcuConf(dir, '', 'local', path.join(home, 'real')));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const t = await readTree(path.join(dir, 'repo/'));
    expect(t.key).toEqual(expect.objectContaining({ type: 'symlink', target: path.join(secret, 'key') }));

    // The user points the configured folder elsewhere: refused, not followed.
    nobodyDoes(`cd '${home}' && mv real real.x && ln -s '${secret}' real`);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^reposnap: .*real is a symlink someone other than root can replace/m);
    expect(await containing(await fs.realpath(path.join(dir, 'repo')), 'SECRET')).toEqual([]);
  });
});

describe.skipIf(!isRoot)('sync-user cannot change a published snapshot', () => {
  it('as that user: no file is created, written, removed, renamed or chmod-ed in any snapshot; set-id bits go; held descriptors write into nothing published', { timeout: 60_000 }, async () => {
    const dir = tmpdir('syncuser');
    await fs.chmod(dir, 0o755);
    const up = path.join(dir, 'upstream');
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`cat-${i % 10}/pkg-${i}.ebuild`] = `EAPI=8 ${i}\n`;
    await writeTree(up, { ...files, 'run.sh': { content: '#!/bin/sh\n', mode: 0o4755 } });
    await fs.chmod(path.join(up, 'run.sh'), 0o4755);
    const conf = await writeConf(dir, rcuConf(dir, 'sync-user = nobody:nogroup\nsync-rcu-spare-snapshots = 3', 'rsync', up));
    const staging = path.join(dir, 'store', 'reposnap', 'staging');
    // While syncs run, nobody opens every file it can write in staging and
    // keeps the descriptors, to write through them after the commits.
    const done = path.join(dir, 'done');
    const holder = spawn(
      'setpriv',
      [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', process.execPath, '-e', HOLDER, staging, done],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    procs.push(holder);
    let held = '';
    holder.stdout?.on('data', (d: Buffer) => (held += d.toString()));
    const first = await runCli(['-c', conf, 'sync']);
    expect(first.stderr).toBe('');
    await writeTree(up, { 'cat-1/pkg-1.ebuild': 'EAPI=8 changed\n', 'new/file': 'new\n' });
    const second = await runCli(['-c', conf, 'sync']);
    expect(second.stderr).toBe('');
    await fs.writeFile(done, '');
    await new Promise((resolve) => holder.on('exit', resolve));
    // The race was run: the user did hold descriptors on files it made.
    expect(Number(held)).toBeGreaterThan(0);

    for (const id of ['1', '2']) {
      const snap = path.join(dir, 'store', 'snapshots', id);
      expect(await containing(snap, 'TAMPERED')).toEqual([]);
      const st = await fs.stat(path.join(snap, 'run.sh'));
      expect(st.mode & 0o7777).toBe(0o755);
      expect(st.uid).toBe(0);
      for (const attempt of [
        `touch '${snap}/planted'`,
        `touch '${snap}/cat-1/planted'`,
        `echo x >> '${snap}/cat-1/pkg-1.ebuild'`,
        `rm -f '${snap}/cat-2/pkg-2.ebuild'`,
        `mv '${snap}/cat-3' '${snap}/moved'`,
        `chmod 777 '${snap}/cat-4/pkg-4.ebuild'`,
        `chmod 777 '${snap}/cat-4'`,
        `touch -d 2000-01-01 '${snap}/cat-5/pkg-5.ebuild'`,
      ]) {
        expect(nobodyDoes(attempt).code, attempt).not.toBe(0);
      }
    }
    const t = await readTree(path.join(dir, 'store', 'snapshots', '2'));
    expect(t['cat-1/pkg-1.ebuild']?.content).toBe('EAPI=8 changed\n');
    expect(t['cat-2/pkg-2.ebuild']?.content).toBe('EAPI=8 2\n');
  });
});

describe('sync-rsync-extra-opts is an allow-list', () => {
  const refused: Array<[string, RegExp]> = [
    ['-D', /rsync option -D would publish devices/],
    ['-aD', /rsync option -D \(in -aD\)/],
    ['--devices', /--devices would publish devices/],
    ['--specials', /--specials would publish devices/],
    ['--chmod=a+w', /--chmod sets modes/],
    ['--checksum', /--checksum changes existing files in place/],
    ['-X', /-X changes existing files in place/],
    ['-A', /-A changes existing files in place/],
    ['--inpl', /rsync option --inpl is not allowed/],
    ['--inplace', /--inplace writes into existing files/],
    ['-e "ssh -o x"', /-e runs a command of its own/],
    ['--rsync-path="rsync --inplace"', /--rsync-path runs another command/],
    ['--old-args', /--old-args is not allowed/],
    ['--info=name0', /--info hides what changed/],
    ['-q', /-q hides what changed/],
    ['/root/', /"\/root\/" is not an rsync option/],
    ['-- /root/', /option "--" is not allowed/],
    ['--exclude', /--exclude needs a value/],
    ['--partial-dir=.p', /--partial-dir is not allowed/],
    ['--backup', /--backup is not allowed/],
  ];
  for (const [opts, why] of refused) {
    it(`refuses ${opts} at its line, exit 2`, async () => {
      const dir = tmpdir();
      await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
      const conf = await writeConf(dir, rcuConf(dir, `sync-rsync-extra-opts = ${opts}`, 'rsync'));
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^reposnap: .*repos\.conf:7: \[test\] sync-rsync-extra-opts: /);
      expect(r.stderr).toMatch(why);
      await expect(fs.lstat(path.join(dir, 'store'))).rejects.toThrow();
    });
  }

  it('passes allowed options on, and its own safety options still apply after them', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { keep: 'x\n', 'skip/me': 'y\n', open: { content: 'z\n', mode: 0o666 } });
    const conf = await writeConf(dir, rcuConf(dir, "sync-rsync-extra-opts = -zW --bwlimit=100000 --timeout 60 --exclude '/skip' -v --no-motd", 'rsync'));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const t = await readTree(path.join(dir, 'repo/'));
    expect(Object.keys(t).sort()).toEqual(['keep', 'open']);
    expect(t.open?.mode).toBe(0o644);
  });
});

describe('tarball bounds', () => {
  it('stops an archive that unpacks past the limit, commits nothing and keeps no fill', async () => {
    const dir = tmpdir();
    const src = path.join(dir, 'bomb');
    await fs.mkdir(src);
    execFileSync('sh', ['-c', `head -c 300000000 /dev/zero > '${src}/zeros' && tar -C '${src}' -cf - zeros | xz -1 -T1 > '${dir}/bomb.tar.xz'`]);
    const small = (await fs.stat(path.join(dir, 'bomb.tar.xz'))).size;
    expect(small).toBeLessThan(100_000);
    const body = await fs.readFile(path.join(dir, 'bomb.tar.xz'));
    const base = await serve((_req, res) => res.writeHead(200, { 'content-length': body.length }).end(body));
    const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', `${base}/bomb.tar.xz`));
    const t0 = Date.now();
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^reposnap: repo test: the archive \(\d+ bytes\) unpacks to more than 67108864 bytes .*refusing it, nothing is kept\n$/);
    expect(r.stderr).not.toMatch(/resume/);
    expect(Date.now() - t0).toBeLessThan(30_000);
    const used = execFileSync('du', ['-sb', path.join(dir, 'store')], { encoding: 'utf8' });
    expect(Number(used.split('\t')[0])).toBeLessThan(70 * 1024 * 1024);
    // Configured larger, the same archive is fine.
    await fs.writeFile(conf, rcuConf(dir, 'sync-tarball-max-unpacked-size = 1G\nsync-tarball-max-ratio = 0', 'tarball', `${base}/bomb.tar.xz`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
  });

  it('stops a download past sync-tarball-max-size: announced, or a body without end', async () => {
    const dir = tmpdir();
    const base = await serve((req, res) => {
      if (req.url === '/announced.tar') return void res.writeHead(200, { 'content-length': 10 * 1024 * 1024 }).end(Buffer.alloc(10 * 1024 * 1024));
      res.writeHead(200); // chunked, no length, no end
      const chunk = Buffer.alloc(64 * 1024);
      const timer = setInterval(() => res.write(chunk), 1);
      res.on('close', () => clearInterval(timer));
    });
    for (const [name, what] of [
      ['announced.tar', /10485760 bytes announced/],
      ['endless.tar', /more than 1048576 bytes sent/],
    ] as const) {
      const conf = await writeConf(dir, rcuConf(dir, 'sync-tarball-max-size = 1M', 'tarball', `${base}/${name}`));
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(what);
      expect(r.stderr).toMatch(/refusing it, nothing is kept\n$/);
      const scratch = (await fs.readdir(path.join(dir, 'store', 'reposnap', 'staging')).catch(() => [] as string[])).filter((n) => n.endsWith('.scratch'));
      for (const s of scratch) expect(await fs.readdir(path.join(dir, 'store', 'reposnap', 'staging', s))).toEqual([]);
    }
  });

  it('does not send one URL\'s validators to another after sync-uri changes', async () => {
    const dir = tmpdir();
    const tree = (name: string): Buffer => {
      const d = path.join(dir, `src-${name}`);
      execFileSync('sh', ['-c', `mkdir -p '${d}' && echo ${name} > '${d}/which' && tar -C '${d}' -cf - which`]);
      return execFileSync('tar', ['-C', d, '-cf', '-', 'which']);
    };
    const bodies: Record<string, { body: Buffer; modified: string }> = {
      '/a.tar': { body: tree('a'), modified: new Date('2026-11-20T00:00:00Z').toUTCString() },
      '/b.tar': { body: tree('b'), modified: new Date('2026-11-10T00:00:00Z').toUTCString() },
    };
    // A server that answers If-Modified-Since by date, as most do.
    const base = await serve((req, res) => {
      const f = bodies[req.url ?? ''];
      if (!f) return void res.writeHead(404).end();
      const since = req.headers['if-modified-since'];
      if (since && new Date(since) >= new Date(f.modified)) return void res.writeHead(304, { 'last-modified': f.modified }).end();
      res.writeHead(200, { 'last-modified': f.modified, 'content-length': f.body.length }).end(f.body);
    });
    const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', `${base}/a.tar`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await fs.writeFile(conf, rcuConf(dir, '', 'tarball', `${base}/b.tar`));
    const r = await runCli(['-c', conf, 'sync', '--json']);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { results: Array<{ outcome: string }> }).results[0]?.outcome).toBe('updated');
    expect(await fs.readFile(path.join(dir, 'repo', 'which'), 'utf8')).toBe('b\n');
  });
});

describe('misuse', () => {
  it('refuses a store that another configuration\'s repository owns (exit 2), leaving its location alone', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const first = await writeConf(dir, rcuConf(dir), 'first.conf');
    expect((await runCli(['-c', first, 'sync'])).code).toBe(0);
    const before = await fs.readlink(path.join(dir, 'repo'));
    for (const other of [
      rcuConf(dir).replace('[test]', '[other]').replace(`location = ${path.join(dir, 'repo')}`, `location = ${path.join(dir, 'elsewhere')}`),
      rcuConf(dir).replace(`location = ${path.join(dir, 'repo')}`, `location = ${path.join(dir, 'elsewhere')}`),
    ]) {
      const second = await writeConf(dir, other, 'second.conf');
      for (const cmd of [['sync'], ['gc'], ['revert', other.includes('[other]') ? 'other' : 'test']]) {
        const r = await runCli(['-c', second, ...cmd]);
        expect(r.code, cmd.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/^reposnap: .*second\.conf:6: \[(other|test)\] sync-rcu-store-dir: the store .* belongs to repository "test" \(location .*\/repo\)/);
      }
    }
    expect(await fs.readlink(path.join(dir, 'repo'))).toBe(before);
    await expect(fs.lstat(path.join(dir, 'elsewhere'))).rejects.toThrow();
  });

  it('a sync that waited while the store was reverted says so plainly', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    // Hold the repo as revert does, start a sync that waits, then do what
    // revert does under its lock: the location becomes a plain directory
    // and the store goes.
    const lock = await FileLock.acquire(path.join(dir, 'store', 'reposnap', 'sync.lock'), { operation: 'revert' });
    await writeTree(path.join(dir, 'upstream'), { g: 'new\n' });
    const waiting = startCli(['-c', conf, 'sync']);
    // Once it says it waits (a fixed pause lost the race on a loaded machine).
    await new Promise<void>((resolve) => {
      let said = '';
      waiting.child.stderr?.on('data', (d: Buffer) => {
        said += d.toString();
        if (said.includes('waiting for the update')) resolve();
      });
    });
    await fs.rm(path.join(dir, 'repo'));
    await fs.cp(path.join(dir, 'store', 'snapshots', '1'), path.join(dir, 'repo'), { recursive: true });
    await fs.rm(path.join(dir, 'store'), { recursive: true });
    await lock.release();
    const r = await waiting.done;
    expect(r.code).toBe(1);
    // Said at once: it waits for the holder (this process, as revert), then why it did nothing.
    const [waited, ...rest] = r.stderr.split('\n');
    expect(waited).toMatch(new RegExp(`^reposnap: waiting for the update of test by pid ${process.pid} \\(revert, since \\S+\\)$`));
    expect(rest.join('\n')).toBe(`reposnap: repo test: the store ${path.join(dir, 'store')} was removed while this waited for it (reverted to a plain directory?); nothing was done\n`);
    expect((await fs.lstat(path.join(dir, 'repo'))).isDirectory()).toBe(true);
  });

  it('refuses a configuration file that is a FIFO at once; inside a repos.conf folder skips it with a warning, as Portage skips it', async () => {
    const dir = tmpdir();
    execFileSync('mkfifo', [path.join(dir, 'fifo.conf')]);
    const t0 = Date.now();
    const r = await runCli(['-c', path.join(dir, 'fifo.conf'), 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`reposnap: ${path.join(dir, 'fifo.conf')}: not a regular file (a FIFO); refusing to read it\n`);
    const folder = path.join(dir, 'repos.conf');
    await fs.mkdir(folder);
    await fs.writeFile(path.join(folder, 'a.conf'), rcuConf(dir));
    execFileSync('mkfifo', [path.join(folder, 'b.conf')]);
    const r2 = await runCli(['-c', folder, 'status']);
    expect(r2.code).toBe(0);
    expect(r2.stderr).toBe(`reposnap: warning: ${path.join(folder, 'b.conf')}: skipped: not a regular file, as Portage skips it\n`);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('refuses ~ in paths, system folders as location or store, and stores that contain one', async () => {
    const dir = tmpdir();
    const cases: Array<[string, RegExp]> = [
      [`[r]\nlocation = ~/repo\n`, /\[r\] location: "~\/repo": ~ is not expanded here/],
      [`[r]\nlocation = /etc\n`, /\[r\] location: \/etc is a system folder/],
      [`[r]\nlocation = /\n`, /\[r\] location: \/ is the filesystem root/],
      [`[r]\nlocation = /usr/share\n`, /\[r\] location: \/usr\/share is a system folder/],
      [`[r]\nlocation = ${dir}/repo\nsync-rcu = yes\nsync-rcu-store-dir = /\n`, /sync-rcu-store-dir: must not contain the location/],
      [`[r]\nlocation = ${dir}/repo\nsync-rcu = yes\nsync-rcu-store-dir = /usr\n`, /sync-rcu-store-dir: \/usr is a system folder/],
      [`[r]\nlocation = /srv/repo\nsync-rcu = yes\nsync-rcu-store-dir = /var/lib\n`, /sync-rcu-store-dir: \/var\/lib is a system folder/],
      [`[r]\nlocation = /srv/repo\nsync-rcu = yes\nsync-rcu-store-dir = /etc/portage/x/..\n`, /sync-rcu-store-dir: \/etc\/portage is a system folder/],
      [`[r]\nlocation = /srv/repo\nsync-rcu = yes\nsync-rcu-store-dir = ~root/store\n`, /~ is not expanded here/],
    ];
    for (const [text, why] of cases) {
      const conf = await writeConf(dir, text);
      const r = await runCli(['-c', conf, 'status']);
      expect(r.code, text).toBe(2);
      expect(r.stderr).toMatch(why);
    }
  });

  it('ignores a file named like a snapshot, and refuses ids past the bound instead of reusing or losing one', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0'));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await fs.writeFile(path.join(dir, 'store', 'snapshots', '7'), 'not a snapshot\n');
    await writeTree(path.join(dir, 'upstream'), { f: 'y\n' });
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: unknown }).results as { repos: Array<{ snapshots: Array<{ id: number }> }> };
    expect(st.repos[0]?.snapshots.map((s) => s.id)).toEqual([1, 2]);
    // The spare slot went to snapshot 1, not to the file.
    await writeTree(path.join(dir, 'upstream'), { f: 'z\n' });
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const st2 = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: unknown }).results as { repos: Array<{ snapshots: Array<{ id: number }> }> };
    expect(st2.repos[0]?.snapshots.map((s) => s.id)).toEqual([2, 3]);

    await fs.writeFile(path.join(dir, 'store', 'reposnap', 'last-id'), '9007199254740991\n');
    await writeTree(path.join(dir, 'upstream'), { f: 'w\n' });
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/snapshot ids past 1000000000000 \(reposnap\/last-id says 9007199254740991\)/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/3');
  });
});

