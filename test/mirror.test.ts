/**
 * Serving mirrors while syncs commit: a downstream client sees one whole
 * snapshot for its whole session.
 *
 * - An rsync daemon module whose path is the location, with use chroot = yes:
 *   the daemon chroots into the location at the start of each session, which
 *   resolves the symlink once; the session then reads that snapshot only.
 * - A web server that pins each connection to the snapshot current when the
 *   connection opened (resolve the location once, hold a lease while the
 *   connection lives), built on the library as docs/design.md describes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import type { Lease } from '../src/store/leases.js';
import { isRoot, rcuConf, runCli, sleep, tmpdir, wholeVersion, writeConf, writeVersionedTree, freePort, stopChildren, waitForPort } from './helpers.js';

const N = 400;
const procs: ChildProcess[] = [];
afterAll(() => stopChildren(procs));


/** Commit new versions upstream every few ms until `done` resolves. */
async function keepSyncing(conf: string, up: string, done: Promise<unknown>): Promise<number> {
  let stop = false;
  void done.finally(() => (stop = true));
  let v = 1;
  while (!stop) {
    await writeVersionedTree(up, N, `v${v++}`);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(0);
  }
  return v - 1;
}

describe('serving mirrors', () => {
  it.skipIf(!isRoot)('an rsync daemon module (use chroot = yes) on the location serves one snapshot per session', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, N, 'v0');
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 50\nsync-rcu-ttl-days = 0'));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    const port = await freePort();
    const rsyncd = await writeConf(
      dir,
      `pid file = ${dir}/rsyncd.pid\nuse chroot = yes\nuid = root\ngid = root\n[repo]\npath = ${dir}/repo\nread only = yes\n`,
      'rsyncd.conf',
    );
    const daemon = spawn('rsync', ['--daemon', '--no-detach', '--address=127.0.0.1', `--port=${port}`, `--config=${rsyncd}`], { stdio: 'ignore' });
    procs.push(daemon);
    await waitForPort(port);

    // Downstream mirrors, slowed down so that commits land mid-session.
    const sessions = [1, 2, 3].map(async (i) => {
      const dest = path.join(dir, `downstream-${i}`);
      const r = await new Promise<number | null>((resolve) => {
        const c = spawn('rsync', ['-a', '--bwlimit=60', `rsync://127.0.0.1:${port}/repo/`, `${dest}/`], { stdio: 'ignore' });
        c.on('close', resolve);
      });
      expect(r).toBe(0);
      return wholeVersion(dest, N);
    });
    const all = Promise.all(sessions);
    const commits = await keepSyncing(conf, up, all);
    const versions = await all;
    expect(commits).toBeGreaterThan(0); // snapshots were committed during the sessions
    for (const v of versions) expect(v).toMatch(/^v\d+$/);
  });

  it('a web server that resolves the location once per connection serves one snapshot per session', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, N, 'v0');
    // spare 0, ttl 0: only the leases keep a session's snapshot alive.
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0'));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const repo = Repos.load({ path: conf }).get('test');

    const pinned = new WeakMap<net.Socket, Promise<Lease>>();
    const server = http.createServer((req, res) => {
      const sock = req.socket;
      let lease = pinned.get(sock);
      if (!lease) {
        lease = repo.lease();
        pinned.set(sock, lease);
        sock.once('close', () => void lease?.then((l) => l.release()));
      }
      void lease.then((l) => {
        const file = path.join(l.path, path.normalize(decodeURIComponent(req.url ?? '/')));
        if (!file.startsWith(`${l.path}/`)) return res.writeHead(403).end();
        createReadStream(file)
          .on('error', () => res.writeHead(404).end())
          .once('open', () => res.writeHead(200))
          .pipe(res);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;

    // One keep-alive connection per session, fetching every file slowly.
    const session = async (): Promise<string> => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const get = (p: string) =>
        new Promise<string>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path: p, agent }, (res) => {
            let body = '';
            res.setEncoding('utf8').on('data', (d: string) => (body += d));
            res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${p}: HTTP ${res.statusCode}`))));
          }).on('error', reject);
        });
      const version = (await get('/VERSION')).trim();
      for (let i = 0; i < N; i += 7) {
        const body = await get(`/cat-${Math.floor(i / 50)}/pkg-${i}.ebuild`);
        expect(body).toBe(`version=${version}\nfile=${i}\n`);
        await sleep(2);
      }
      agent.destroy();
      return version;
    };
    try {
      const all = Promise.all([session(), session()]);
      const commits = await keepSyncing(conf, up, all);
      const versions = await all;
      expect(commits).toBeGreaterThan(0);
      expect(versions.every((v) => /^v\d+$/.test(v))).toBe(true);
    } finally {
      server.closeAllConnections();
      server.close();
    }
    // Sessions over, leases released: collection leaves only the latest.
    await repo.gc();
    expect((await fs.readdir(path.join(dir, 'store', 'snapshots'))).length).toBe(1);
  });
});
