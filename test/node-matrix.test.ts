/**
 * The smoke subset that CI also runs on Node 22 and 24 (scripts/node-
 * matrix-smoke), beside the whole suite on the machine's Node: each
 * command a user relies on, through the CLI, once, with the parts that
 * differ between Node versions (libuv's file calls, the native lock
 * addon, fetch, child processes and signals) in the path. Quick on
 * purpose: the whole suite is what tests the behaviour.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STAMP_FILE } from '../src/stamp/stamp.js';
import { isRoot, rcuConf, readTree, runCli, startCli, tmpdir, writeConf, writeTree } from './helpers.js';

const servers: http.Server[] = [];
afterAll(() => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

interface StatusJson {
  repos: Array<{ current: { id: number } | null; snapshots: Array<{ id: number; keepReasons: string[]; leases: { pids: number[] } }> }>;
}

async function status(conf: string): Promise<StatusJson['repos'][number]> {
  const r = await runCli(['-c', conf, 'status', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { results: StatusJson }).results.repos[0] as StatusJson['repos'][number];
}

async function contents(root: string): Promise<Record<string, string>> {
  const t = await readTree(root);
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v.type === 'file' ? `${(v.mode & 0o777).toString(8)} ${v.content}` : v.type === 'symlink' ? `-> ${v.target}` : v.type]));
}

describe(`the CLI on Node ${process.versions.node}`, () => {
  it('sync (rsync, then a change), status, exec holding a lease, gc', async () => {
    const dir = tmpdir('matrix');
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n', 'profiles/repo_name': 'test\n', 'link': { symlink: 'cat/pkg' } });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0', 'rsync', up));

    const first = await runCli(['-c', conf, 'sync', '--json']);
    expect(first.code, first.stderr).toBe(0);
    // Nothing on stderr: V8 would name there a flag this Node does not know (src/cli/v8-tuning.ts).
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout).results[0]).toMatchObject({ outcome: 'updated', snapshot: { id: 1 } });
    expect(await contents(path.join(dir, 'repo'))).toEqual(await contents(up));

    // A reader holds snapshot 1 (a lease, passed as fd 3) while upstream changes twice.
    const stop = path.join(dir, 'stop');
    const reader = startCli(['-c', conf, 'exec', 'test', '--', 'sh', '-c', `echo "$REPOSNAP_SNAPSHOT_ID"; while [ ! -e '${stop}' ]; do sleep 0.02; done`]);
    await new Promise<void>((resolve) => reader.child.stdout?.on('data', () => resolve()));
    for (const v of [2, 3]) {
      // A new size each time: rsync, like any mirror, misses a same-size rewrite within the second.
      await writeTree(up, { 'cat/pkg/pkg-1.ebuild': `EAPI=8 ${'#'.repeat(v)}\n`, [`new/file-${v}`]: `${v}\n` });
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`updated to snapshot ${v}\\b`));
    }
    expect(await contents(path.join(dir, 'repo'))).toEqual(await contents(up));
    const st = await status(conf);
    expect(st.current?.id).toBe(3);
    // 1 is leased, 2 was collected (no spares, no TTL), 3 is current.
    expect(st.snapshots.map((s) => s.id)).toEqual([1, 3]);
    expect(st.snapshots[0]?.keepReasons).toEqual(['leased']);
    expect(st.snapshots[0]?.leases.pids).toContain(reader.child.pid);

    await fs.writeFile(stop, '');
    const done = await reader.done;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toBe('1\n');
    const gc = await runCli(['-c', conf, 'gc']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(/1 {2}deleted/);
    expect((await status(conf)).snapshots.map((s) => s.id)).toEqual([3]);
  });

  it('sync of a tarball over HTTP (fetch), and up to date by a 304', async () => {
    const dir = tmpdir('matrix-tar');
    const src = path.join(dir, 'src');
    await writeTree(src, { 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n', 'metadata/timestamp.chk': 'T\n' });
    execFileSync('tar', ['-c', '-J', '-f', `${src}.tar.xz`, '--owner=0', '--group=0', '--numeric-owner', '-C', src, '.']);
    const body = await fs.readFile(`${src}.tar.xz`);
    const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
    const server = http.createServer((req, res) => {
      if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
      res.writeHead(200, { etag, 'content-length': body.length }).end(body);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', `http://127.0.0.1:${(server.address() as AddressInfo).port}/snap.tar.xz`));
    const first = await runCli(['-c', conf, 'sync'], { env: { http_proxy: '', no_proxy: '' } });
    expect(first.code, first.stderr).toBe(0);
    expect(await contents(path.join(dir, 'repo'))).toEqual(await contents(src));
    const again = await runCli(['-c', conf, 'sync', '--json'], { env: { http_proxy: '', no_proxy: '' } });
    expect(JSON.parse(again.stdout).results[0]).toMatchObject({ outcome: 'up-to-date', unchangedBeforeClone: true });
  });

  it.skipIf(!isRoot)('sync as sync-user: what the user fetched is taken back, into new inodes', async () => {
    const dir = tmpdir('matrix-user');
    await fs.chmod(dir, 0o755);
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n', 'profiles/repo_name': 'test\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-user = nobody:nogroup', 'rsync', up));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code, r.stderr).toBe(0);
    for (const f of ['cat/pkg/pkg-1.ebuild', 'profiles/repo_name', 'cat/pkg', 'cat']) {
      expect((await fs.lstat(path.join(dir, 'repo', f))).uid, f).toBe(0);
    }
    expect(await contents(path.join(dir, 'repo'))).toEqual(await contents(up));
  });

  it('stamp touch, show and run', async () => {
    const root = tmpdir('matrix-stamp');
    expect((await runCli(['stamp', 'touch', root])).code).toBe(0);
    const run = await runCli(['stamp', 'run', root, '--', 'sh', '-c', `grep -q '"inProgress":true' '${root}/${STAMP_FILE}' && exit 3`]);
    expect(run.code).toBe(3);
    const show = await runCli(['stamp', 'show', root, '--json']);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout).results).toMatchObject({ counter: 4, inProgress: false, pid: expect.any(Number) });
  });

  it('SIGINT stops a sync cleanly (exit 130), and the next one completes', async () => {
    const dir = tmpdir('matrix-sigint');
    const up = path.join(dir, 'upstream');
    await writeTree(up, { a: 'a\n' });
    await fs.writeFile(path.join(up, 'big'), Buffer.alloc(4 << 20, 'x'));
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rsync-extra-opts = --bwlimit=500', 'rsync', up));
    const cli = startCli(['-c', conf, 'sync']);
    // Once the staging tree exists, rsync is at work (and will be for seconds).
    const staging = path.join(dir, 'store', 'reposnap', 'staging');
    for (let i = 0; i < 500 && (await fs.readdir(staging).catch(() => [] as string[])).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 300));
    cli.child.kill('SIGINT');
    const r = await cli.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('sync aborted: interrupted by SIGINT');
    const next = await runCli(['-c', await writeConf(dir, rcuConf(dir, '', 'rsync', up), 'fast.conf'), 'sync', '--no-wait']);
    expect(next.code, next.stderr).toBe(0);
    expect((await fs.stat(path.join(dir, 'repo', 'big'))).size).toBe(4 << 20);
  });
});
