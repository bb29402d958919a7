/**
 * Aborting a sync (SyncOptions.signal, and the CLI's SIGINT), with real
 * rsync, a real slow HTTP server on 127.0.0.1 and real processes: what runs
 * is stopped and gone before the sync rejects, the repo is let go, the
 * previous snapshot stays current, and the next sync resumes what was
 * fetched and publishes exactly upstream.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AbortedError, ReposnapError } from '../src/errors.js';
import { FileLock } from '../src/lock/file-lock.js';
import { Repos } from '../src/repos.js';
import { digest } from '../torture/upstreams.js';
import { descendants, rcuConf, readTree, runCli, running, sleep, startCli, tmpdir, until, writeConf } from './helpers.js';

const servers: http.Server[] = [];
afterAll(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** `n` files of 8 KiB that say `version` (big enough for a slowed-down rsync to take seconds). */
async function writeBigTree(root: string, n: number, version: string): Promise<void> {
  await fs.rm(root, { recursive: true, force: true });
  for (let d = 0; d * 100 < n; d++) {
    const dir = path.join(root, `cat-${d}`);
    await fs.mkdir(dir, { recursive: true });
    for (let i = d * 100; i < Math.min(n, (d + 1) * 100); i++) {
      await fs.writeFile(path.join(dir, `pkg-${i}.ebuild`), `${version} ${i}\n`.padEnd(8192, '.'));
    }
  }
  await fs.writeFile(path.join(root, 'VERSION'), `${version}\n`);
}

async function status(repos: Repos): Promise<{ busy: unknown; staging: Array<{ locked: boolean; fill: string | null; tx: string }> }> {
  return repos.get('test').status();
}

function expectAborted(err: unknown): AbortedError {
  expect(err).toBeInstanceOf(AbortedError);
  expect(err).toBeInstanceOf(ReposnapError);
  const e = err as AbortedError;
  expect(e.code).toBe('EABORTED');
  expect(e.name).toBe('AbortError');
  expect(e.message).toMatch(/^repo test: sync aborted.*nothing was published$/);
  return e;
}

describe('an aborted sync', () => {
  it('rejects at once when aborted before it starts, touching nothing', async () => {
    const dir = tmpdir('abort-before');
    await writeBigTree(path.join(dir, 'upstream'), 10, 'A');
    const repos = Repos.load({ path: await writeConf(dir, rcuConf(dir)) });
    const reason = new Error('changed my mind');
    const t0 = performance.now();
    const err = await repos.get('test').sync({ signal: AbortSignal.abort(reason) }).catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(expectAborted(err).cause).toBe(reason);
    expect((err as Error).message).toBe('repo test: sync aborted: changed my mind; nothing was published');
    // No store, no location: nothing was made.
    expect(await fs.readdir(dir)).toEqual(['repos.conf', 'upstream']);
  });

  it('stops waiting for another update of the repo', async () => {
    const dir = tmpdir('abort-wait');
    await writeBigTree(path.join(dir, 'upstream'), 10, 'A');
    const repos = Repos.load({ path: await writeConf(dir, rcuConf(dir)) });
    await repos.get('test').sync();
    const holder = await FileLock.acquire(path.join(dir, 'store', 'reposnap', 'sync.lock'), { operation: 'test' });
    try {
      const ac = new AbortController();
      let t0 = 0;
      const waiting = repos.get('test').sync({
        signal: ac.signal,
        onWait: () =>
          setTimeout(() => {
            t0 = performance.now();
            ac.abort();
          }, 300),
      });
      expectAborted(await waiting.catch((e: unknown) => e));
      expect(performance.now() - t0).toBeLessThan(1000);
      // What waited for the lock is gone; the holder still holds the repo, the aborted sync took nothing.
      expect(descendants(process.pid).filter((p) => p.state !== 'Z')).toEqual([]);
      expect(await FileLock.isHeld(path.join(dir, 'store', 'reposnap', 'sync.lock'))).toBe(true);
    } finally {
      await holder.release();
    }
  });

  it('during an rsync fill: rsync is stopped and gone, the repo let go, the previous snapshot current; the next sync resumes to exactly upstream', { timeout: 120_000 }, async () => {
    const dir = tmpdir('abort-rsync');
    const upstream = path.join(dir, 'upstream');
    await writeBigTree(upstream, 100, 'A');
    // Slowed down to about a minute for the whole of B, so that the abort lands in the transfer.
    const slow = await writeConf(dir, rcuConf(dir, 'sync-rsync-extra-opts = --bwlimit=200', 'rsync', upstream), 'slow.conf');
    const repos = Repos.load({ path: slow });
    expect((await repos.get('test').sync()).snapshot?.id).toBe(1);
    const a = await digest(path.join(dir, 'store', 'snapshots', '1'));
    await writeBigTree(upstream, 500, 'B');
    // And one large file, which rsync is in the middle of when the abort comes.
    await fs.writeFile(path.join(upstream, 'cat-0', 'big.tar'), Buffer.alloc(8 << 20, 'B'));

    const ac = new AbortController();
    const syncing = repos.get('test').sync({ signal: ac.signal }).catch((e: unknown) => e);
    // The apply: rsync with the plan's paths on its stdin, once it has written part of the large file.
    const staging = path.join(dir, 'store', 'reposnap', 'staging');
    const rsync = await until('the rsync applying the plan', () => descendants(process.pid).find((p) => p.comm === 'rsync' && p.cmdline.includes('--files-from=-')));
    const temporary = await until('part of the large file in staging', async () => {
      for (const tx of await fs.readdir(staging)) {
        const folder = path.join(staging, tx, 'cat-0');
        for (const name of await fs.readdir(folder).catch(() => [] as string[])) {
          if (name.startsWith('.big.tar.') && (await fs.stat(path.join(folder, name))).size > 100_000) return path.join(folder, name);
        }
      }
      return undefined;
    });
    const rsyncs = descendants(process.pid).filter((p) => p.comm === 'rsync');
    expect(rsyncs.length).toBeGreaterThan(1); // rsync forks: every one of them must go
    ac.abort();
    const t0 = performance.now();
    expectAborted(await syncing);
    // Not the minute the transfer would take: rsync was stopped (its receiver takes a second or two).
    expect(performance.now() - t0).toBeLessThan(6000);

    // Stopped and waited for: no rsync, nor any other child of ours, is left.
    expect(running(rsync.pid)).toBe(false);
    expect(rsyncs.filter((p) => running(p.pid))).toEqual([]);
    expect(descendants(process.pid).filter((p) => p.state !== 'Z')).toEqual([]);
    // The previous snapshot is current, untouched.
    expect(await fs.realpath(path.join(dir, 'repo'))).toBe(path.join(dir, 'store', 'snapshots', '1'));
    expect(await digest(path.join(dir, 'repo'))).toBe(a);
    // The repo and the staging tree are let go; the staging keeps what was fetched, for the next sync.
    const st = await status(repos);
    expect(st.busy).toBeNull();
    expect(st.staging).toMatchObject([{ locked: false, fill: 'partial' }]);
    // rsync removed its temporary (the receiver does, on its way out), and left no other.
    await expect(fs.stat(temporary)).rejects.toThrow(/ENOENT/);
    expect(execFileSync('find', [path.join(staging, st.staging[0]?.tx as string), '-name', '.*.??????'], { encoding: 'utf8' })).toBe('');

    // The next sync (at full speed) takes it over, and publishes exactly upstream.
    const fast = Repos.load({ path: await writeConf(dir, rcuConf(dir, '', 'rsync', upstream), 'fast.conf') });
    const report = await fast.get('test').sync({ wait: false });
    expect(report).toMatchObject({ outcome: 'updated', resumed: true, snapshot: { id: 2 } });
    expect(await digest(path.join(dir, 'repo'))).toBe(await digest(upstream));
    expect(await digest(path.join(dir, 'store', 'snapshots', '1'))).toBe(a);
  });

  it('during a tarball download: the download stops, its bytes are kept, and the next sync resumes it (Range) to exactly upstream', { timeout: 60_000 }, async () => {
    const dir = tmpdir('abort-tarball');
    const src = path.join(dir, 'src');
    const archive = async (version: string, n: number): Promise<Buffer> => {
      await writeBigTree(src, n, version);
      execFileSync('tar', ['-c', '-f', `${src}.tar`, '--owner=0', '--group=0', '--numeric-owner', '-C', src, '.']);
      return fs.readFile(`${src}.tar`);
    };
    // Serves the archive with an ETag and ranges; `slow`: 64 KiB every 50 ms.
    let body = await archive('A', 20);
    let slow = false;
    let sent = 0;
    const ranges: string[] = [];
    const server = http.createServer((req, res) => {
      const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = m && req.headers['if-range'] === etag ? Number(m[1]) : 0;
      if (m) ranges.push(req.headers.range as string);
      const part = body.subarray(start);
      res.writeHead(start > 0 ? 206 : 200, {
        etag,
        'accept-ranges': 'bytes',
        'content-length': part.length,
        ...(start > 0 ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
      });
      if (!slow) return void res.end(part);
      let at = 0;
      const next = (): void => {
        if (res.destroyed) return;
        const chunk = part.subarray(at, at + 65536);
        at += chunk.length;
        sent += chunk.length;
        if (at >= part.length) return void res.end(chunk);
        res.write(chunk, () => setTimeout(next, 50));
      };
      next();
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/gentoo.tar`;
    const repos = Repos.load({ path: await writeConf(dir, rcuConf(dir, '', 'tarball', url)) });
    await repos.get('test').sync();
    const a = await digest(path.join(dir, 'repo'));

    body = await archive('B', 300); // about 2.5 MB, some 2 s at the slow pace
    slow = true;
    const ac = new AbortController();
    const syncing = repos.get('test').sync({ signal: ac.signal }).catch((e: unknown) => e);
    await until('a third of B sent', () => (sent > body.length / 3 ? true : undefined));
    ac.abort();
    const t0 = performance.now();
    expectAborted(await syncing);
    expect(performance.now() - t0).toBeLessThan(2000);
    const got = sent;

    expect(await digest(path.join(dir, 'repo'))).toBe(a);
    const st = await status(repos);
    expect(st.busy).toBeNull();
    expect(st.staging).toHaveLength(1);
    expect(st.staging[0]?.locked).toBe(false);
    // What was received is on disk, for the next sync to resume.
    const partial = (await fs.stat(path.join(dir, 'store', 'reposnap', 'staging', `${st.staging[0]?.tx}.scratch`, 'archive'))).size;
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(body.length);
    // The server sent nothing more once the sync was aborted.
    await sleep(300);
    expect(sent).toBeLessThanOrEqual(got + 65536);

    slow = false;
    const report = await repos.get('test').sync({ wait: false });
    expect(report).toMatchObject({ outcome: 'updated', resumed: true });
    expect(ranges).toEqual([`bytes=${partial}-`]);
    expect(await digest(path.join(dir, 'repo'))).toBe(await digest(src));
  });

  it('by SIGINT to the CLI: rsync is stopped and gone, the exit status says SIGINT, and the next sync resumes to exactly upstream', { timeout: 120_000 }, async () => {
    const dir = tmpdir('abort-cli');
    const upstream = path.join(dir, 'upstream');
    await writeBigTree(upstream, 100, 'A');
    const slow = await writeConf(dir, rcuConf(dir, 'sync-rsync-extra-opts = --bwlimit=200', 'rsync', upstream), 'slow.conf');
    expect((await runCli(['-c', slow, 'sync'])).code).toBe(0);
    const a = await digest(path.join(dir, 'repo'));
    await writeBigTree(upstream, 500, 'B');

    const cli = startCli(['-c', slow, 'sync']);
    const pid = cli.child.pid as number;
    await until('the rsync applying the plan', () => descendants(pid).find((p) => p.comm === 'rsync' && p.cmdline.includes('--files-from=-')));
    await sleep(500);
    const rsyncs = descendants(pid).filter((p) => p.comm === 'rsync');
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('reposnap: interrupted by SIGINT; stopping');
    expect(r.stderr).toContain('reposnap: repo test: sync aborted: interrupted by SIGINT; nothing was published');
    // reposnap waited for them before it exited.
    expect(rsyncs.filter((p) => running(p.pid))).toEqual([]);
    expect(await digest(path.join(dir, 'repo'))).toBe(a);

    const fast = await writeConf(dir, rcuConf(dir, '', 'rsync', upstream), 'fast.conf');
    const next = await runCli(['-c', fast, 'sync', '--no-wait', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).results[0]).toMatchObject({ outcome: 'updated', resumed: true });
    expect(await digest(path.join(dir, 'repo'))).toBe(await digest(upstream));
    expect((await readTree(path.join(dir, 'repo')))['VERSION']?.content).toBe('B\n');
  });
});
