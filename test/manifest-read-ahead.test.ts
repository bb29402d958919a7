/**
 * Changed sub-Manifests read ahead while the fill writes them: the
 * verification after the fill uses what was read only for the very bytes it
 * reads itself, so reading ahead changes how long it takes, never what it
 * answers. Checked on staging trees made as a fill makes them (a hardlink
 * clone of a verified base, new files renamed in), and through real rsync
 * syncs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, makeSigningKey, writeManifests, type SigningKey } from '../bench/manifest-writer.js';
import { ManifestReadAhead } from '../src/trust/manifest-read-ahead.js';
import { verifyMetaManifest, type MetaManifestResult } from '../src/trust/metamanifest.js';
import { Keyring } from '../src/trust/openpgp.js';
import { syncTree } from '../src/tree/mirror.js';
import type { FolderIndex } from '../src/trust/tree-walk.js';
import { rcuConf, readTree, runCli, sleep, tmpdir, writeConf, writeTree } from './helpers.js';

const TREE: Record<string, string> = {
  'profiles/repo_name': 'test\n',
  'metadata/layout.conf': 'masters =\n',
  'app-misc/hello/hello-1.ebuild': 'EAPI=8\n',
  'app-misc/hello/metadata.xml': '<pkgmetadata/>\n',
  'app-misc/world/world-2.ebuild': 'EAPI=8\nSLOT=0\n',
  'dev-libs/foo/foo-1.ebuild': 'EAPI=7\n',
  'dev-libs/foo/foo-2.ebuild': 'EAPI=8\n',
  'dev-libs/bar/bar-1.ebuild': 'EAPI=8\n',
};

let dir: string;
let key: SigningKey;
let ring: Keyring;
beforeAll(async () => {
  dir = tmpdir('mm-read-ahead');
  key = makeSigningKey(dir, 'signer');
  ring = await Keyring.open('t', { file: key.pub, position: { file: 'x', line: 0 } });
});
afterAll(async () => {
  await ring.close();
  forgetKeys();
});

/** Every file of a tree, tree-relative. */
async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { recursive: true, withFileTypes: true })) {
    if (e.isFile()) out.push(path.relative(root, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)));
  }
  return out.sort();
}

/**
 * A verified base (T1), the next upstream (T2: one ebuild changed, one
 * added, Manifests written anew) and a staging tree as a fill leaves it: a
 * hardlink clone of the base with T2's changed files renamed in.
 */
async function stage(tag: string): Promise<{ base: string; staging: string; clonedAt: number; folders: FolderIndex; written: string[] }> {
  const t1 = path.join(dir, tag, 'T1');
  const t2 = path.join(dir, tag, 'T2');
  await writeTree(t1, TREE);
  await writeManifests(t1, { key, timestamp: new Date(Date.now() - 60_000) });
  execFileSync('cp', ['-a', t1, t2]);
  await writeTree(t2, { 'dev-libs/foo/foo-2.ebuild': 'EAPI=8\n# fixed\n', 'dev-libs/foo/foo-3.ebuild': 'EAPI=8\n' });
  await writeManifests(t2, { key });
  const base = path.join(dir, tag, 'base');
  execFileSync('cp', ['-a', t1, base]);
  let folders: FolderIndex | undefined;
  await verifyMetaManifest({ repo: 't', root: base, keyring: ring, jobs: 1, maxAgeDays: 0, onFolders: (i) => (folders = i) });
  const staging = path.join(dir, tag, 'staging');
  execFileSync('cp', ['-al', base, staging]);
  const clonedAt = Date.now();
  await sleep(60);
  const written: string[] = [];
  for (const f of await files(t2)) {
    const now = await fs.readFile(path.join(t2, f));
    const was = await fs.readFile(path.join(base, f)).catch(() => undefined);
    if (was?.equals(now)) continue;
    await fs.mkdir(path.dirname(path.join(staging, f)), { recursive: true });
    await fs.writeFile(path.join(staging, `${f}.new`), now);
    await fs.rename(path.join(staging, `${f}.new`), path.join(staging, f));
    written.push(f);
  }
  return { base, staging, clonedAt, folders: folders as FolderIndex, written };
}

/** Offer `paths` and wait until all of them are read ahead. */
async function readAhead(staging: string, base: string, paths: string[]): Promise<ManifestReadAhead> {
  const ahead = new ManifestReadAhead(staging, base);
  ahead.offer(paths);
  while (ahead.waiting > 0) await new Promise((resolve) => setImmediate(resolve));
  return ahead;
}

function verify(s: { staging: string; base: string; clonedAt: number; folders: FolderIndex }, ahead?: { take(p: string): ReturnType<ManifestReadAhead['take']> }): Promise<MetaManifestResult> {
  return verifyMetaManifest({ repo: 't', root: s.staging, keyring: ring, jobs: 1, maxAgeDays: 0, base: { root: s.base, clonedAt: s.clonedAt, folders: s.folders }, ...(ahead ? { readAhead: ahead } : {}) });
}

describe('changed sub-Manifests read ahead during the fill', () => {
  it('are used by the verification, which answers as it does without them', async () => {
    const s = await stage('used');
    const subManifests = s.written.filter((f) => /(^|\/)Manifest(\.gz)?$/.test(f) && f !== 'Manifest');
    expect(subManifests).toContain('dev-libs/foo/Manifest');
    const ahead = await readAhead(s.staging, s.base, s.written);
    const taken: string[] = [];
    const used = await verify(s, {
      take: (p) => {
        const r = ahead.take(p);
        if (r) taken.push(p);
        return r;
      },
    });
    const without = await verify(s);
    expect(taken.sort()).toEqual(subManifests.sort());
    expect(used.readAhead).toBe(subManifests.length);
    expect(without.readAhead).toBe(0);
    expect({ ...used, readAhead: 0 }).toEqual({ ...without, readAhead: 0 });
    expect(used.incremental).toBe(true);
  });

  it('a sub-Manifest replaced after it was read ahead is verified as it is now (same size, other bytes: refused)', async () => {
    const s = await stage('replaced');
    const ahead = await readAhead(s.staging, s.base, s.written);
    // The mirror (or anyone) swaps the package Manifest for one byte changed
    // in a hash: same size, so only its hash can tell, and the digests read
    // ahead are those of the good bytes.
    const file = path.join(s.staging, 'dev-libs/foo/Manifest');
    const good = await fs.readFile(file, 'utf8');
    const at = good.indexOf('SHA512 ') + 7;
    const bad = good.slice(0, at) + (good[at] === '0' ? '1' : '0') + good.slice(at + 1);
    expect(bad.length).toBe(good.length);
    await fs.writeFile(`${file}.new`, bad);
    await fs.rename(`${file}.new`, file);
    await expect(verify(s, ahead)).rejects.toThrow(/^dev-libs\/foo\/Manifest: \w+ hash mismatch/);
    await expect(verify(s)).rejects.toThrow(/^dev-libs\/foo\/Manifest: \w+ hash mismatch/);
  });

  it('a sub-Manifest that was bad when read ahead and good by the time of the check passes', async () => {
    const s = await stage('mended');
    const file = path.join(s.staging, 'dev-libs/foo/Manifest');
    const good = await fs.readFile(file);
    await fs.writeFile(`${file}.new`, Buffer.concat([good, Buffer.from('DATA x 1 SHA512 00\n')]));
    await fs.rename(`${file}.new`, file);
    const ahead = await readAhead(s.staging, s.base, s.written);
    await fs.writeFile(`${file}.new`, good);
    await fs.rename(`${file}.new`, file);
    const r = await verify(s, ahead);
    expect(r.readAhead).toBe(s.written.filter((f) => /\/Manifest(\.gz)?$/.test(f)).length - 1);
  });

  it('reads ahead only sub-Manifests, and nothing once stopped', async () => {
    const s = await stage('only');
    const ahead = new ManifestReadAhead(s.staging, s.base);
    ahead.offer(['Manifest', 'dev-libs/foo/foo-3.ebuild', '.hidden/Manifest', 'dev-libs/foo/Manifest.bz2']);
    expect(ahead.waiting).toBe(0);
    ahead.offer(['dev-libs/foo/Manifest', 'no/such/Manifest']);
    ahead.stop();
    ahead.offer(['dev-libs/Manifest.gz']);
    expect(ahead.waiting).toBe(0);
    await sleep(20);
    expect(ahead.take('dev-libs/foo/Manifest')).toBeUndefined();
    const next = await readAhead(s.staging, s.base, ['dev-libs/foo/Manifest', 'no/such/Manifest']);
    expect(next.take('no/such/Manifest')).toBeUndefined();
    const got = next.take('dev-libs/foo/Manifest');
    expect(got?.bytes.equals(await fs.readFile(path.join(s.staging, 'dev-libs/foo/Manifest')))).toBe(true);
    expect(got?.baseLines?.size).toBeGreaterThan(0);
    expect(next.take('dev-libs/foo/Manifest')).toBeUndefined();
  });
});

describe('through syncs', () => {
  it('rsync, its plan applied in parts: an incremental verification finds changed sub-Manifests read ahead, and the tree is upstream', async () => {
    const base = path.join(dir, 'sync-rsync');
    const up = path.join(base, 'upstream');
    // Forty packages, thirty changed: applied one path at a time, the fill
    // lasts long enough for the reading thread to start and catch up.
    const tree: Record<string, string> = { ...TREE };
    for (let i = 0; i < 40; i++) tree[`dev-util/p${i}/p${i}-1.ebuild`] = 'EAPI=8\n';
    await writeTree(up, tree);
    await writeManifests(up, { key, timestamp: new Date(Date.now() - 60_000) });
    const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${key.pub}\n`, 'rsync'));
    const env = { REPOSNAP_APPLY_BATCH: '1' };
    const first = await runCli(['-c', conf, 'sync', '--json'], { env });
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout).results[0].verified).toMatchObject({ incremental: false, readAhead: 0 });
    // rsync's quick check compares whole-second mtimes: a Manifest rewritten
    // to the same size within the second of the first sync would look unchanged.
    await sleep(1100);
    const changes: Record<string, string> = {};
    for (let i = 0; i < 30; i++) changes[`dev-util/p${i}/p${i}-2.ebuild`] = 'EAPI=8\n';
    await writeTree(up, changes);
    await writeManifests(up, { key });
    const second = await runCli(['-c', conf, 'sync', '--json'], { env });
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const v = JSON.parse(second.stdout).results[0].verified;
    expect(v.incremental).toBe(true);
    expect(v.readAhead).toBeGreaterThan(0);
    expect(v.readAhead).toBeLessThan(v.manifests);
    expect(await readTree(`${base}/repo/`)).toEqual(await readTree(up));
  });

  it('the tree engine of the local and tarball sources says which files it wrote, tree-relative, once in place', async () => {
    const up = path.join(dir, 'engine-up');
    const dst = path.join(dir, 'engine-dst');
    await writeTree(up, TREE);
    await fs.mkdir(dst);
    await syncTree(up, dst, { repo: 't', excludeTop: [], link: false });
    await writeTree(up, { 'dev-libs/foo/foo-2.ebuild': 'EAPI=8\n# fixed\n', 'dev-libs/new/new-1.ebuild': 'EAPI=8\n' });
    const said: Array<[string, string]> = [];
    // A trailing slash on the destination does not change the paths said.
    await syncTree(`${up}/`, `${dst}/`, { repo: 't', excludeTop: [], link: false, onWritten: (p) => said.push([p, readFileSync(path.join(dst, p), 'utf8')]) });
    expect(said.sort()).toEqual([
      ['dev-libs/foo/foo-2.ebuild', 'EAPI=8\n# fixed\n'],
      ['dev-libs/new/new-1.ebuild', 'EAPI=8\n'],
    ]);
  });
});
