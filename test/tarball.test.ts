/**
 * The tarball source against a real HTTP server on 127.0.0.1 that speaks
 * ETag / Last-Modified / Range / If-Range and can cut a response mid-body,
 * with archives made by the system tar and hostile ones written by hand.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { readMeta } from '../src/store/metadata.js';
import { rcuConf, readTree, runCli, tmpdir, writeConf, writeTree } from './helpers.js';
import { tarEntry, tarOf } from '../torture/lib.js';

interface Served {
  body: Buffer;
  etag: string;
  lastModified: string;
}

interface RequestLog {
  path: string;
  status: number;
  bytes: number;
  headers: http.IncomingHttpHeaders;
}

/** A small file server: conditional GET, ranges, and an optional cut. */
class TestServer {
  readonly files = new Map<string, Served>();
  readonly log: RequestLog[] = [];
  /** Cut the next full response after this many body bytes. */
  cutNextAt: number | undefined;
  private server = http.createServer((req, res) => this.handle(req, res));
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }
  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
  url(p: string): string {
    return `http://127.0.0.1:${this.port}${p}`;
  }
  put(p: string, body: Buffer): void {
    const etag = `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"`;
    this.files.set(p, { body, etag, lastModified: new Date(Math.floor(Date.now() / 1000) * 1000).toUTCString() });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const f = this.files.get(req.url ?? '');
    const record = (status: number, bytes: number): void => {
      this.log.push({ path: req.url ?? '', status, bytes, headers: req.headers });
    };
    if (!f) {
      res.writeHead(404).end();
      record(404, 0);
      return;
    }
    const common = { etag: f.etag, 'last-modified': f.lastModified, 'accept-ranges': 'bytes' };
    if (req.headers['if-none-match'] === f.etag) {
      res.writeHead(304, common).end();
      record(304, 0);
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    if (range && (ifRange === undefined || ifRange === f.etag || ifRange === f.lastModified)) {
      const start = Number(range[1]);
      if (start >= f.body.length) {
        res.writeHead(416, { ...common, 'content-range': `bytes */${f.body.length}` }).end();
        record(416, 0);
        return;
      }
      const part = f.body.subarray(start);
      res.writeHead(206, { ...common, 'content-length': part.length, 'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}` });
      res.end(part);
      record(206, part.length);
      return;
    }
    res.writeHead(200, { ...common, 'content-length': f.body.length });
    if (this.cutNextAt !== undefined) {
      const n = this.cutNextAt;
      this.cutNextAt = undefined;
      res.write(f.body.subarray(0, n), () => {
        setTimeout(() => res.socket?.destroy(), 50);
      });
      record(200, n);
      return;
    }
    res.end(f.body);
    record(200, f.body.length);
  }
}

const servers: TestServer[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

async function server(): Promise<TestServer> {
  const s = new TestServer();
  await s.start();
  servers.push(s);
  return s;
}

/** Archive `dir` with the system tar; `flag` picks the compression. */
async function archive(dir: string, flag: '' | '-z' | '-J' | '--zstd', top = 'gentoo-20261121'): Promise<Buffer> {
  const out = `${dir}.tar${flag}`;
  const args = ['-c', '-f', out, '--owner=0', '--group=0', '--numeric-owner', '-C', path.dirname(dir), '--transform', `s,^${path.basename(dir)},${top},`, path.basename(dir)];
  if (flag) args.unshift(flag);
  execFileSync('tar', args);
  return fs.readFile(out);
}

async function tree(dir: string, version: string): Promise<string> {
  const root = path.join(dir, `src-${version}`);
  await writeTree(root, {
    'metadata/timestamp.chk': `${version}\n`,
    'cat/pkg/pkg-1.ebuild': 'EAPI=8\n',
    'eclass/e.eclass': 'eclass\n',
    'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    link: { symlink: 'cat/pkg' },
  });
  // Same mtimes in every version for the files that did not change.
  const t = new Date('2026-01-01T00:00:00Z');
  for (const f of ['cat/pkg/pkg-1.ebuild', 'eclass/e.eclass', 'scripts/run.sh']) await fs.utimes(path.join(root, f), t, t);
  return root;
}

describe('tarball source', () => {
  it('syncs a .tar.gz, makes no snapshot when the server says 304, shares unchanged files with the previous snapshot', async () => {
    const dir = tmpdir();
    const srv = await server();
    const v1 = await tree(dir, 'v1');
    srv.put('/gentoo.tar.gz', await archive(v1, '-z'));
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-spare-snapshots = 3', 'tarball', srv.url('/gentoo.tar.gz')), path.join(dir, 'r.conf')).get('test');
    const layout = new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo'));

    const r1 = await repo.sync();
    expect(r1.snapshot?.id).toBe(1);
    expect(await readTree(layout.snapshot(1))).toEqual(await readTree(v1));
    const sha = createHash('sha256').update(srv.files.get('/gentoo.tar.gz')?.body as Buffer).digest('hex');
    expect((await readMeta(layout, 1))?.revision).toBe(sha);

    const before = srv.log.length;
    const r2 = await repo.sync();
    expect(r2.outcome).toBe('up-to-date');
    expect(r2.unchangedBeforeClone).toBe(true);
    expect(srv.log.slice(before)).toEqual([expect.objectContaining({ status: 304, bytes: 0 })]);
    expect(srv.log[before]?.headers['if-none-match']).toBe(srv.files.get('/gentoo.tar.gz')?.etag);

    const v2 = await tree(dir, 'v2');
    srv.put('/gentoo.tar.gz', await archive(v2, '-z'));
    const r3 = await repo.sync();
    expect(r3.snapshot?.id).toBe(2);
    expect(await readTree(layout.snapshot(2))).toEqual(await readTree(v2));
    const ino = async (id: number, rel: string) => (await fs.lstat(path.join(layout.snapshot(id), rel))).ino;
    expect(await ino(2, 'eclass/e.eclass')).toBe(await ino(1, 'eclass/e.eclass'));
    expect(await ino(2, 'metadata/timestamp.chk')).not.toBe(await ino(1, 'metadata/timestamp.chk'));
    expect(await fs.readFile(path.join(layout.snapshot(1), 'metadata/timestamp.chk'), 'utf8')).toBe('v1\n');
  });

  for (const [flag, ext] of [['', 'tar'], ['-J', 'tar.xz'], ['--zstd', 'tar.zst']] as const) {
    it(`unpacks .${ext}`, async () => {
      const dir = tmpdir();
      const srv = await server();
      const v1 = await tree(dir, 'v1');
      srv.put(`/snap.${ext}`, await archive(v1, flag));
      const repo = Repos.fromText(rcuConf(dir, '', 'tarball', srv.url(`/snap.${ext}`)), path.join(dir, 'r.conf')).get('test');
      await repo.sync();
      expect(await readTree(await repo.currentPath())).toEqual(await readTree(v1));
    });
  }

  it('resumes a download cut mid-body with Range + If-Range (asserted in bytes)', async () => {
    const dir = tmpdir();
    const srv = await server();
    const big = path.join(dir, 'big');
    await writeTree(big, { 'metadata/timestamp.chk': 'x\n' });
    // Incompressible content, so the archive is large enough to cut.
    await fs.writeFile(path.join(big, 'blob'), createHash('sha512').update('seed').digest().toString('hex').repeat(4000));
    const body = await archive(big, '');
    srv.put('/big.tar', body);
    const cut = Math.floor(body.length / 3);
    srv.cutNextAt = cut;
    const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', srv.url('/big.tar')));

    const first = await runCli(['-c', conf, 'sync']);
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(new RegExp(`^reposnap: repo test: download of .*/big\\.tar interrupted after ${cut} bytes of ${body.length}.*the next sync resumes it\\n$`));

    const second = await runCli(['-c', conf, 'sync', '--json']);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const resume = srv.log[srv.log.length - 1];
    expect(resume?.status).toBe(206);
    expect(resume?.headers.range).toBe(`bytes=${cut}-`);
    expect(resume?.headers['if-range']).toBe(srv.files.get('/big.tar')?.etag);
    expect(resume?.bytes).toBe(body.length - cut);
    const meta = await readMeta(new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo')), 1);
    expect(meta?.sourceState?.downloadedBytes).toBe(String(body.length - cut));
    expect(meta?.revision).toBe(createHash('sha256').update(body).digest('hex'));
    expect(await readTree(path.join(dir, 'store', 'snapshots', '1'))).toEqual(await readTree(big));
  });

  it('checks sha256 (configured or from a checksum file) before extracting', async () => {
    const dir = tmpdir();
    const srv = await server();
    const v1 = await tree(dir, 'v1');
    const body = await archive(v1, '-z');
    srv.put('/s.tar.gz', body);
    const good = createHash('sha256').update(body).digest('hex');
    srv.put('/s.tar.gz.sha256sum', Buffer.from(`${good}  s.tar.gz\n`));
    const conf = await writeConf(dir, rcuConf(dir, `sync-tarball-checksum-uri = ${srv.url('/s.tar.gz.sha256sum')}`, 'tarball', srv.url('/s.tar.gz')));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    const v2 = await tree(dir, 'v2');
    srv.put('/s.tar.gz', await archive(v2, '-z'));
    const bad = 'ab'.repeat(32);
    await fs.writeFile(conf, rcuConf(dir, `sync-tarball-sha256 = ${bad}`, 'tarball', srv.url('/s.tar.gz')));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`repo test: checksum mismatch for .*/s\\.tar\\.gz: expected sha256 ${bad}, got [0-9a-f]{64}`));
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('v1\n');
    // Nothing was extracted anywhere.
    const scratch = (await fs.readdir(path.join(dir, 'store', 'reposnap', 'staging'))).filter((n) => n.endsWith('.scratch'));
    for (const s of scratch) expect(await fs.readdir(path.join(dir, 'store', 'reposnap', 'staging', s))).not.toContain('tree');
  });

  it('fails clearly on a truncated or corrupt archive and on an unreachable server', async () => {
    const dir = tmpdir();
    const srv = await server();
    const v1 = await tree(dir, 'v1');
    const body = await archive(v1, '-z');
    srv.put('/t.tar.gz', body);
    const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', srv.url('/t.tar.gz')));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    srv.put('/t.tar.gz', body.subarray(0, Math.floor(body.length / 2)));
    const trunc = await runCli(['-c', conf, 'sync']);
    expect(trunc.code).toBe(1);
    expect(trunc.stderr).toMatch(/^reposnap: repo test: the archive is corrupt or truncated \(.+\)\n$/);

    srv.put('/t.tar.gz', Buffer.from('this is not an archive at all, just text\n'.repeat(20)));
    const junk = await runCli(['-c', conf, 'sync']);
    expect(junk.code).toBe(1);
    expect(junk.stderr).toMatch(/repo test: the archive (is corrupt or truncated|is empty or not a tar archive)/);

    srv.close();
    const down = await runCli(['-c', conf, 'sync']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/repo test: cannot download http:\/\/127\.0\.0\.1:\d+\/t\.tar\.gz: .*ECONNREFUSED/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });
});

describe('hostile archives are refused, nothing is committed or written outside', () => {
  const ok = tarEntry('metadata/timestamp.chk', { data: 'hostile\n' });
  const cases: Array<[string, Buffer, RegExp]> = [
    ['absolute path', tarOf(ok, tarEntry('/tmp/reposnap-escape-abs', { data: 'x' })), /absolute path/],
    ['.. in a path', tarOf(ok, tarEntry('a/../../reposnap-escape-dots', { data: 'x' })), /path leaves the tree/],
    ['symlink to an absolute path', tarOf(ok, tarEntry('etc', { type: '2', link: '/etc' })), /symlink to an absolute path/],
    ['symlink pointing outside', tarOf(ok, tarEntry('a/up', { type: '2', link: '../../..' })), /symlink points outside the tree/],
    ['member written through a symlink', tarOf(ok, tarEntry('d', { type: '2', link: 'sub' }), tarEntry('d/file', { data: 'x' })), /written through the symlink d/],
    ['hardlink outside', tarOf(ok, tarEntry('h', { type: '1', link: '../outside' })), /hardlink points outside the tree/],
    ['character device', tarOf(ok, tarEntry('dev/null', { type: '3' })), /CharacterDevice entries .* are not allowed/],
    ['block device', tarOf(ok, tarEntry('dev/sda', { type: '4' })), /BlockDevice entries/],
    ['FIFO', tarOf(ok, tarEntry('fifo', { type: '6' })), /FIFO entries/],
    // Cut short right after a whole entry: only the missing end marker tells.
    ['cut short at an entry boundary', Buffer.concat([ok, tarEntry('more', { data: 'x' })]), /the archive is corrupt or truncated \(it has no end-of-archive marker\)/],
  ];
  for (const [what, body, re] of cases) {
    it(what, async () => {
      const dir = tmpdir();
      const srv = await server();
      const v1 = await tree(dir, 'v1');
      srv.put('/h.tar', await archive(v1, ''));
      const conf = await writeConf(dir, rcuConf(dir, '', 'tarball', srv.url('/h.tar')));
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

      srv.put('/h.tar', body);
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(1);
      if (!what.startsWith('cut short')) expect(r.stderr).toMatch(/^reposnap: repo test: refusing archive entry /);
      expect(r.stderr).toMatch(re);
      expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
      expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('v1\n');
      await expect(fs.lstat('/tmp/reposnap-escape-abs')).rejects.toThrow();
      await expect(fs.lstat(path.join(dir, 'store', 'reposnap', 'reposnap-escape-dots'))).rejects.toThrow();
      await expect(fs.lstat(path.join(dir, 'outside'))).rejects.toThrow();
    });
  }
});
