/**
 * Signed snapshot tarballs: `sync-type = webrsync` and the tarball source
 * with sync-webrsync-verify-signature, against a real HTTP server on
 * 127.0.0.1 and keys made by gpg. A signature is checked after the download
 * and before anything is extracted; a failure publishes nothing.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { readMeta } from '../src/store/metadata.js';
import { forgetKeys as forgetManifestKeys, makeSigningKey as makeManifestKey, writeManifests } from '../bench/manifest-writer.js';
import { readTree, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

const homes: string[] = [];
const servers: SnapshotServer[] = [];
afterAll(() => {
  for (const s of servers) s.close();
  for (const h of homes) execFileSync('gpgconf', ['--homedir', h, '--kill', 'all'], { stdio: 'ignore' });
});

interface SigningKey {
  fpr: string;
  /** The exported public key, for sync-openpgp-key-path. */
  pub: string;
  /** An armored detached signature over `data`, as Gentoo's .gpgsig files are. */
  sign(data: Buffer): Buffer;
}

/** A signing key in a GnuPG home of its own. */
function makeSigningKey(dir: string, name: string): SigningKey {
  const home = path.join(dir, `gnupg-${name}`);
  execFileSync('mkdir', ['-m', '700', home]);
  homes.push(home);
  const gpg = (args: string[], input?: Buffer): Buffer =>
    execFileSync('gpg', ['--homedir', home, '--batch', '--no-tty', ...args], { stdio: ['pipe', 'pipe', 'ignore'], ...(input ? { input } : {}) });
  gpg(['--passphrase', '', '--quick-gen-key', `${name} <${name}@example.org>`, 'ed25519', 'sign', 'never']);
  const fpr = /^fpr:+([0-9A-F]+):/m.exec(gpg(['--with-colons', '--list-keys']).toString())?.[1] as string;
  const pub = path.join(dir, `${name}.asc`);
  execFileSync('sh', ['-c', `gpg --homedir '${home}' --batch --armor --export ${fpr} > '${pub}'`]);
  return { fpr, pub, sign: (data) => gpg(['--armor', '--detach-sign', '--local-user', fpr, '--output', '-'], data) };
}

/** Files by path with ETag, conditional GET and resumption (Range + If-Range), and a log of requests. */
class SnapshotServer {
  readonly files = new Map<string, { body: Buffer; etag: string }>();
  readonly log: Array<{ path: string; status: number; bytes: number }> = [];
  private readonly server = http.createServer((req, res) => this.handle(req, res));
  private port = 0;

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
    this.files.set(p, { body, etag: `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"` });
  }
  /** Requests for `p` since the log had `since` entries. */
  requests(p: string, since = 0): Array<{ status: number; bytes: number }> {
    return this.log.slice(since).filter((r) => r.path === p).map(({ status, bytes }) => ({ status, bytes }));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const f = this.files.get(req.url ?? '');
    const reply = (status: number, headers: http.OutgoingHttpHeaders, body?: Buffer): void => {
      res.writeHead(status, headers).end(body);
      this.log.push({ path: req.url ?? '', status, bytes: body?.length ?? 0 });
    };
    if (!f) return reply(404, {});
    const common = { etag: f.etag, 'accept-ranges': 'bytes' };
    if (req.headers['if-none-match'] === f.etag) return reply(304, common);
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && req.headers['if-range'] === f.etag) {
      const start = Number(range[1]);
      if (start >= f.body.length) return reply(416, { ...common, 'content-range': `bytes */${f.body.length}` });
      const part = f.body.subarray(start);
      return reply(206, { ...common, 'content-length': part.length, 'content-range': `bytes ${start}-${f.body.length - 1}/${f.body.length}` }, part);
    }
    reply(200, { ...common, 'content-length': f.body.length }, f.body);
  }
}

async function server(): Promise<SnapshotServer> {
  const s = new SnapshotServer();
  await s.start();
  servers.push(s);
  return s;
}

/** A small Gentoo-like tree saying `version`. */
async function tree(dir: string, version: string): Promise<string> {
  const root = path.join(dir, `src-${version}`);
  await writeTree(root, {
    'metadata/timestamp.chk': `${version}\n`,
    'profiles/repo_name': 'gentoo\n',
    'app-misc/hello/hello-1.ebuild': 'EAPI=8\n',
    'eclass/e.eclass': 'eclass\n',
  });
  return root;
}

/** `root` as a .tar.xz under one top folder, as Gentoo's snapshots are. */
function snapshot(root: string, top: string): Buffer {
  const out = `${root}.tar.xz`;
  execFileSync('tar', ['-J', '-c', '-f', out, '--owner=0', '--group=0', '--numeric-owner', '-C', path.dirname(root), '--transform', `s,^${path.basename(root)},${top},`, path.basename(root)]);
  return readFileSync(out);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function section(dir: string, type: string, extra: string): string {
  return `[test]\nlocation = ${path.join(dir, 'repo')}\nsync-type = ${type}\nsync-rcu = yes\nsync-rcu-store-dir = ${path.join(dir, 'store')}\n${extra}\n`;
}

/** What each update's scratch directory holds (the download, an extracted tree). */
async function scratchContents(dir: string): Promise<string[]> {
  const staging = path.join(dir, 'store', 'reposnap', 'staging');
  const names: string[] = [];
  for (const s of (await fs.readdir(staging).catch(() => [])).filter((n) => n.endsWith('.scratch'))) names.push(...(await fs.readdir(path.join(staging, s))));
  return names;
}

const SNAP = '/snapshots/gentoo-latest.tar.xz';

describe('sync-type = webrsync with sync-webrsync-verify-signature', () => {
  it('publishes a .tar.xz in a gentoo-YYYYMMDD/ folder signed by the key file, records the key, and a 304 fetches no signature', async () => {
    const dir = tmpdir('webrsync');
    const srv = await server();
    const key = makeSigningKey(dir, 'release');
    const v1 = await tree(dir, 'v1');
    const body = snapshot(v1, 'gentoo-20261122');
    srv.put(SNAP, body);
    srv.put(`${SNAP}.gpgsig`, key.sign(body));
    const conf = await writeConf(dir, section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}\nsync-webrsync-verify-signature = yes\nsync-openpgp-key-path = ${key.pub}`));

    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await readTree(path.join(dir, 'repo'))).toEqual(await readTree(v1));
    const meta = await readMeta(new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo')), 1);
    // What was checked is what was published.
    expect(meta?.revision).toBe(sha256(body));
    expect(meta?.source.type).toBe('webrsync');
    expect(meta?.sourceState?.signedBy).toBe(key.fpr);
    expect(srv.requests(`${SNAP}.gpgsig`)).toEqual([{ status: 200, bytes: expect.any(Number) }]);

    const before = srv.log.length;
    const again = await runCli(['-c', conf, 'sync']);
    expect(again.code).toBe(0);
    expect(srv.log.slice(before)).toEqual([{ path: SNAP, status: 304, bytes: 0 }]);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it('refuses a changed tarball, a foreign key, an oversized or missing signature before extracting: exit 1, one line, nothing published', async () => {
    const dir = tmpdir('webrsync-bad');
    const srv = await server();
    const key = makeSigningKey(dir, 'release');
    const stranger = makeSigningKey(dir, 'stranger');
    const v1 = snapshot(await tree(dir, 'v1'), 'gentoo-20261121');
    srv.put(SNAP, v1);
    srv.put(`${SNAP}.gpgsig`, key.sign(v1));
    const conf = await writeConf(dir, section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}\nsync-webrsync-verify-signature = yes\nsync-openpgp-key-path = ${key.pub}`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    const v2 = snapshot(await tree(dir, 'v2'), 'gentoo-20261122');
    const cases: Array<[string, () => void, RegExp, boolean]> = [
      // Signed, then changed: the signature no longer matches.
      ['changed after signing', () => srv.put(`${SNAP}.gpgsig`, key.sign(v2.subarray(0, v2.length - 1))), /refused: the signature is bad \(the signed content was changed\)/, false],
      ['foreign key', () => srv.put(`${SNAP}.gpgsig`, stranger.sign(v2)), /refused: it is not signed by a key from the key file/, false],
      ['a signature past 64 KiB', () => srv.put(`${SNAP}.gpgsig`, Buffer.alloc(65 * 1024, 'A')), /refused: its signature .*\.gpgsig cannot be fetched \(larger than 65536 bytes\)/, true],
      ['no signature', () => srv.files.delete(`${SNAP}.gpgsig`), /refused: its signature http:\/\/127\.0\.0\.1:\d+\/snapshots\/gentoo-latest\.tar\.xz\.gpgsig cannot be fetched \(HTTP 404 Not Found\)/, true],
    ];
    srv.put(SNAP, v2);
    for (const [what, arrange, why, keepsDownload] of cases) {
      arrange();
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code, what).toBe(1);
      expect(r.stderr.split('\n')).toHaveLength(2);
      expect(r.stderr, what).toMatch(new RegExp(`^reposnap: repo test: gentoo-latest\\.tar\\.xz \\(sha256 ${sha256(v2).slice(0, 16)}\\) `));
      expect(r.stderr, what).toMatch(why);
      expect(r.stderr, what).toMatch(/nothing was published, the previous snapshot stays current\n$/);
      expect(await fs.readlink(path.join(dir, 'store', 'latest')), what).toBe('snapshots/1');
      expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('v1\n');
      const scratch = await scratchContents(dir);
      expect(scratch, what).not.toContain('tree');
      // A refused archive is dropped; one whose signature could not be had is kept to resume.
      expect(scratch.includes('archive'), what).toBe(keepsDownload);
    }

    // Once the signature is published, the kept download is used, not
    // fetched again: after the precheck's conditional GET (a new ETag), the
    // fill asks for the rest of it and is told it has it all.
    srv.put(`${SNAP}.gpgsig`, key.sign(v2));
    const before = srv.log.length;
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(srv.requests(SNAP, before).map((x) => x.status)).toEqual([200, 416]);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/2');
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('v2\n');
    expect((await readMeta(new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo')), 2))?.revision).toBe(sha256(v2));
  });

  it('a tree made before verification was turned on is not kept by a 304: the same archive is verified and recorded', async () => {
    const dir = tmpdir('webrsync-later');
    const srv = await server();
    const key = makeSigningKey(dir, 'release');
    const body = snapshot(await tree(dir, 'v1'), 'gentoo-20261122');
    srv.put(SNAP, body);
    srv.put(`${SNAP}.gpgsig`, key.sign(body));
    const conf = await writeConf(dir, section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect(srv.requests(`${SNAP}.gpgsig`)).toEqual([]);

    await writeConf(dir, section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}\nsync-webrsync-verify-signature = yes\nsync-openpgp-key-path = ${key.pub}`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(srv.requests(SNAP).map((x) => x.status)).toEqual([200, 200]);
    const meta = await readMeta(new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo')), 2);
    expect(meta?.revision).toBe(sha256(body));
    expect(meta?.sourceState?.signedBy).toBe(key.fpr);
  });

  it('sync-type = tarball checks <sync-uri>.asc, or sync-tarball-signature-uri', async () => {
    const dir = tmpdir('tarball-signed');
    const srv = await server();
    const key = makeSigningKey(dir, 'release');
    const body = snapshot(await tree(dir, 'v1'), 'snap');
    srv.put('/snap.tar.xz', body);
    srv.put('/snap.tar.xz.asc', key.sign(body));
    const verify = `sync-webrsync-verify-signature = yes\nsync-openpgp-key-path = ${key.pub}`;
    const conf = await writeConf(dir, section(dir, 'tarball', `sync-uri = ${srv.url('/snap.tar.xz')}\n${verify}`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(srv.requests('/snap.tar.xz.asc')).toHaveLength(1);

    const v2 = snapshot(await tree(dir, 'v2'), 'snap');
    srv.put('/snap.tar.xz', v2);
    srv.put('/sigs/snap.sig', key.sign(v2));
    await writeConf(dir, section(dir, 'tarball', `sync-uri = ${srv.url('/snap.tar.xz')}\n${verify}\nsync-tarball-signature-uri = ${srv.url('/sigs/snap.sig')}`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect(srv.requests('/sigs/snap.sig')).toHaveLength(1);
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('v2\n');
  });
});

describe('webrsync configuration', () => {
  it('sync-uri defaults to Gentoo\'s latest snapshot; one that is not http(s) is refused', async () => {
    const dir = tmpdir('webrsync-conf');
    const repo = Repos.fromText(section(dir, 'webrsync', ''), path.join(dir, 'repos.conf')).get('test');
    expect(repo.config.syncUri).toBe('https://distfiles.gentoo.org/snapshots/gentoo-latest.tar.xz');
    expect(repo.config.source).toMatchObject({ type: 'webrsync' });
    expect(repo.config.source).not.toHaveProperty('verify');

    const r = await runCli(['-c', await writeConf(dir, section(dir, 'webrsync', 'sync-uri = rsync://rsync.gentoo.org/gentoo-portage')), 'status']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repos\.conf:6: \[test\] sync-uri: sync-type = webrsync fetches a snapshot tarball over http\(s\), got "rsync:\/\/rsync\.gentoo\.org\/gentoo-portage" \(remove sync-uri for https:\/\/distfiles\.gentoo\.org\/snapshots\/gentoo-latest\.tar\.xz/);
  });

  it('verification without a readable key file, or with one holding no key, is a configuration error (exit 2) naming file, line and key', async () => {
    const dir = tmpdir('webrsync-keys');
    const srv = await server();
    srv.put(SNAP, Buffer.from('never fetched'));
    await fs.writeFile(path.join(dir, 'junk.asc'), 'not a key\n');
    const base = `sync-uri = ${srv.url(SNAP)}\nsync-webrsync-verify-signature = yes`;
    for (const [extra, why] of [
      ['', /repos\.conf:7: \[test\] sync-webrsync-verify-signature: needs sync-openpgp-key-path/],
      [`sync-openpgp-key-path = ${path.join(dir, 'missing.asc')}`, /repos\.conf:8: \[test\] sync-openpgp-key-path: cannot read the key file .*missing\.asc \(ENOENT\)/],
      [`sync-openpgp-key-path = ${path.join(dir, 'junk.asc')}`, /repos\.conf:8: \[test\] sync-openpgp-key-path: .*junk\.asc holds no OpenPGP key that can be used/],
    ] as const) {
      const r = await runCli(['-c', await writeConf(dir, section(dir, 'webrsync', `${base}\n${extra}`)), 'sync']);
      expect(r.code, extra).toBe(2);
      expect(r.stderr).toMatch(why);
      expect(r.stderr.split('\n')).toHaveLength(2);
      await expect(fs.lstat(path.join(dir, 'repo'))).rejects.toThrow();
    }
    // The key file is looked at before the snapshot is downloaded.
    expect(srv.log).toEqual([]);

    const lone = await runCli(['-c', await writeConf(dir, section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}\nsync-tarball-signature-uri = ${srv.url('/x.sig')}`)), 'status']);
    expect(lone.code).toBe(2);
    expect(lone.stderr).toMatch(/repos\.conf:7: \[test\] sync-tarball-signature-uri: is set, but sync-webrsync-verify-signature is not yes/);
  });

  it('sync-webrsync-verify-signature = yes on rsync, git or local is a warning that it verifies nothing there, not a silent yes', async () => {
    const dir = tmpdir('webrsync-other');
    for (const [type, uri] of [['rsync', 'rsync://rsync.gentoo.org/gentoo-portage'], ['git', 'https://github.com/gentoo-mirror/gentoo.git'], ['local', dir]] as const) {
      const r = await runCli(['-c', await writeConf(dir, section(dir, type, `sync-uri = ${uri}\nsync-webrsync-verify-signature = yes`)), 'status']);
      expect(r.code, type).toBe(0);
      expect(r.stderr).toMatch(
        new RegExp(`repos\\.conf:7: \\[test\\] sync-webrsync-verify-signature: ignored: it checks snapshot tarballs \\(sync-type = webrsync or tarball\\); it verifies nothing for sync-type = ${type}\\n`),
      );
    }
    const quiet = await runCli(['-c', await writeConf(dir, section(dir, 'rsync', 'sync-uri = rsync://rsync.gentoo.org/gentoo-portage\nsync-webrsync-verify-signature = no')), 'status']);
    expect(quiet.stderr).not.toMatch(/sync-webrsync-verify-signature/);
  });
});

describe('a webrsync snapshot with a MetaManifest inside, as Gentoo ships them', () => {
  it('checks the tarball signature, then the Manifest tree: a tampered file in a validly signed tarball is refused', async () => {
    const dir = tmpdir('webrsync-mm');
    const srv = await server();
    const key = makeSigningKey(dir, 'release');
    // The key file holds both signers' keys, as Gentoo's release key file
    // holds the keys that sign its snapshots and its Manifests.
    const mkey = makeManifestKey(dir, 'manifests');
    try {
      const keyring = path.join(dir, 'keys.asc');
      await fs.writeFile(keyring, Buffer.concat([await fs.readFile(key.pub), await fs.readFile(mkey.pub)]));
      const good = await tree(dir, 'one');
      await writeManifests(good, { key: mkey });
      const tgz = snapshot(good, 'gentoo-20261122');
      srv.put(SNAP, tgz);
      srv.put(`${SNAP}.gpgsig`, key.sign(tgz));
      const conf = await writeConf(
        dir,
        section(dir, 'webrsync', `sync-uri = ${srv.url(SNAP)}\nsync-webrsync-verify-signature = yes\nsync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${keyring}\n`),
      );
      const first = await runCli(['-c', conf, 'sync', '--json']);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(JSON.parse(first.stdout).results[0].verified).toMatchObject({ signedBy: mkey.fpr, incremental: false });

      // The mirror's release process signed a tree whose ebuild changed after its Manifests were made.
      const bad = await tree(dir, 'two');
      await writeManifests(bad, { key: mkey, timestamp: new Date(Date.now() + 1000) });
      await fs.appendFile(path.join(bad, 'app-misc/hello/hello-1.ebuild'), 'evil\n');
      const tgz2 = snapshot(bad, 'gentoo-20261123');
      srv.put(SNAP, tgz2);
      srv.put(`${SNAP}.gpgsig`, key.sign(tgz2));
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.stderr).toMatch(/MetaManifest verification failed: app-misc\/hello\/hello-1\.ebuild: size mismatch/);
      expect(r.code).toBe(1);
      expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
    } finally {
      forgetManifestKeys();
    }
  });
});
