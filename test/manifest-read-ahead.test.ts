/**
 * Changed sub-Manifests read ahead while the fill writes them: the
 * verification after the fill uses what was read only for the very bytes it
 * reads itself, so reading ahead changes how long it takes, never what it
 * answers. Checked on staging trees made as a fill makes them (a hardlink
 * clone of a verified base, new files renamed in), both on the calling
 * thread (the sources run without a build) and on the reading thread (the
 * build), and through real rsync syncs.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, makeSigningKey, writeManifests, type SigningKey } from '../bench/manifest-writer.js';
import { Repos } from '../src/repos.js';
import { manifestLines } from '../src/trust/manifest-format.js';
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
async function stage(
  tag: string,
  opts: { upstream?: (t2: string) => Promise<void>; keep?: string[] } = {},
): Promise<{ base: string; staging: string; clonedAt: number; folders: FolderIndex; written: string[] }> {
  const t1 = path.join(dir, tag, 'T1');
  const t2 = path.join(dir, tag, 'T2');
  await writeTree(t1, TREE);
  await writeManifests(t1, { key, timestamp: new Date(Date.now() - 60_000) });
  execFileSync('cp', ['-a', t1, t2]);
  await writeTree(t2, { 'dev-libs/foo/foo-2.ebuild': 'EAPI=8\n# fixed\n', 'dev-libs/foo/foo-3.ebuild': 'EAPI=8\n' });
  await opts.upstream?.(t2);
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
    // `keep`: the base's file left as it is (a fill that did not bring it, or an attacker's pick).
    if (was?.equals(now) || opts.keep?.includes(f)) continue;
    await fs.mkdir(path.dirname(path.join(staging, f)), { recursive: true });
    await fs.writeFile(path.join(staging, `${f}.new`), now);
    await fs.rename(path.join(staging, `${f}.new`), path.join(staging, f));
    written.push(f);
  }
  return { base, staging, clonedAt, folders: folders as FolderIndex, written };
}

type ReadAheadClass = typeof ManifestReadAhead;
/** The built module, whose reading runs on its worker thread (the sources have no worker script). */
const built = async (): Promise<ReadAheadClass> => ((await import(new URL('../dist/trust/manifest-read-ahead.js', import.meta.url).href)) as { ManifestReadAhead: ReadAheadClass }).ManifestReadAhead;

/** Every read-ahead made, so that their threads are gone before the test process ends. */
const made: ManifestReadAhead[] = [];
afterAll(async () => {
  await Promise.all(made.map((a) => a.clear()));
});

/** A read-ahead over `staging`, let go when the tests end. */
function started(staging: string, base: string, Impl: ReadAheadClass = ManifestReadAhead): ManifestReadAhead {
  const ahead = new Impl(staging, base);
  made.push(ahead);
  return ahead;
}

/** Offer `paths` and wait until all of them are read ahead. */
async function readAhead(staging: string, base: string, paths: string[], Impl: ReadAheadClass = ManifestReadAhead): Promise<ManifestReadAhead> {
  const ahead = started(staging, base, Impl);
  ahead.offer(paths);
  await ahead.idle();
  return ahead;
}

function verify(s: { staging: string; base: string; clonedAt: number; folders: FolderIndex }, ahead?: { baseRoot: string; take(p: string): ReturnType<ManifestReadAhead['take']> }): Promise<MetaManifestResult> {
  return verifyMetaManifest({ repo: 't', root: s.staging, keyring: ring, jobs: 1, maxAgeDays: 0, base: { root: s.base, clonedAt: s.clonedAt, folders: s.folders }, ...(ahead ? { readAhead: ahead } : {}) });
}

const subManifestsOf = (written: string[]): string[] => written.filter((f) => /(^|\/)Manifest(\.gz)?$/.test(f) && f !== 'Manifest').sort();

describe.each([
  ['on the calling thread', async () => ManifestReadAhead],
  ['on the reading thread', built],
])('changed sub-Manifests read ahead %s', (how, impl) => {
  const tag = how.replace(/ /g, '-');

  it('are used by the verification, which answers as it does without them', async () => {
    const Impl = await impl();
    const s = await stage(`used-${tag}`);
    const subManifests = subManifestsOf(s.written);
    expect(subManifests).toContain('dev-libs/foo/Manifest');
    const ahead = await readAhead(s.staging, s.base, s.written, Impl);
    const taken: string[] = [];
    const used = await verify(s, {
      baseRoot: ahead.baseRoot,
      take: (p) => {
        const r = ahead.take(p);
        if (r) taken.push(p);
        return r;
      },
    });
    const without = await verify(s);
    expect(taken.sort()).toEqual(subManifests);
    expect(used.readAhead).toBe(subManifests.length);
    expect(without.readAhead).toBe(0);
    expect({ ...used, readAhead: 0 }).toEqual({ ...without, readAhead: 0 });
    expect(used.incremental).toBe(true);
    await ahead.clear();
  });

  it('hold the bytes, their digests, the text and the base copy\'s lines', async () => {
    const Impl = await impl();
    const s = await stage(`held-${tag}`);
    const ahead = await readAhead(s.staging, s.base, ['dev-libs/Manifest.gz', 'dev-libs/foo/Manifest'], Impl);
    for (const p of ['dev-libs/Manifest.gz', 'dev-libs/foo/Manifest']) {
      const got = ahead.take(p);
      const bytes = await fs.readFile(path.join(s.staging, p));
      const text = (b: Buffer): string => (p.endsWith('.gz') ? gunzip(b) : b.toString('utf8'));
      expect(Buffer.from(got?.bytes ?? []).equals(bytes)).toBe(true);
      expect(got?.text).toBe(text(bytes));
      expect(got?.digests.get('sha512')).toBe(createHash('sha512').update(bytes).digest('hex'));
      // Compared line by line with the base's copy: which lines it had, and which of its are gone.
      const baseLines = manifestLines(text(await fs.readFile(path.join(s.base, p))));
      const lines = text(bytes).split('\n');
      expect([...(got?.base?.inBase ?? [])]).toEqual(lines.map((l) => (l.trim() !== '' && baseLines.has(l.trim()) ? 1 : 0)));
      expect([...(got?.base?.gone ?? [])].sort()).toEqual([...baseLines].filter((l) => !lines.some((n) => n.trim() === l)).sort());
      expect(got?.base?.gone.length).toBeGreaterThan(0);
      expect(ahead.take(p)).toBeUndefined();
    }
  });

  it('speak for the unchanged files whose lines changed: a dropped line leaves a stray, a changed one a mismatch', async () => {
    const Impl = await impl();
    // Upstream drops dev-libs/bar/bar-1.ebuild; the stale copy stays in staging, its folder untouched.
    const dropped = await stage(`dropped-${tag}`, { upstream: (t2) => fs.rm(path.join(t2, 'dev-libs/bar/bar-1.ebuild')) });
    const a = await readAhead(dropped.staging, dropped.base, dropped.written, Impl);
    await expect(verify(dropped, a)).rejects.toThrow(/dev-libs\/bar\/bar-1\.ebuild: stray file/);
    // Upstream drops the whole package; the stale folder stays, untouched, and only the category
    // Manifest's dropped line says anything about it.
    const gone = await stage(`dropped-package-${tag}`, { upstream: (t2) => fs.rm(path.join(t2, 'dev-libs/bar'), { recursive: true }) });
    const g = await readAhead(gone.staging, gone.base, gone.written, Impl);
    await expect(verify(gone, g)).rejects.toThrow(/dev-libs\/bar\/(Manifest|bar-1\.ebuild): stray file/);
    // Upstream changes it; the fill never brings the new one, so the base's is checked against the new line.
    const changed = await stage(`changed-line-${tag}`, { upstream: (t2) => fs.writeFile(path.join(t2, 'dev-libs/bar/bar-1.ebuild'), 'EAPI=8\n# new\n'), keep: ['dev-libs/bar/bar-1.ebuild'] });
    const b = await readAhead(changed.staging, changed.base, changed.written, Impl);
    expect(b.take('dev-libs/bar/Manifest')?.base?.gone.length).toBe(1);
    const c = await readAhead(changed.staging, changed.base, changed.written, Impl);
    let used = 0;
    const counting = { baseRoot: c.baseRoot, take: (p: string) => { const r = c.take(p); if (r) used++; return r; } };
    await expect(verify(changed, counting)).rejects.toThrow(/dev-libs\/bar\/bar-1\.ebuild: (size|BLAKE2B hash|SHA512 hash) mismatch/);
    expect(used).toBeGreaterThan(0);
  });

  it('read from another base are not used', async () => {
    const Impl = await impl();
    const s = await stage(`other-base-${tag}`);
    // Base lines of another tree (here the staging tree itself: every line "unchanged").
    const ahead = await readAhead(s.staging, s.staging, s.written, Impl);
    const r = await verify(s, ahead);
    expect(r.readAhead).toBe(0);
    expect({ ...r }).toEqual({ ...(await verify(s)) });
  });

  it('nothing but regular sub-Manifests of a sane size are read ahead', async () => {
    const Impl = await impl();
    const s = await stage(`odd-${tag}`);
    const odd = path.join(s.staging, 'odd');
    await fs.mkdir(path.join(odd, 'dir', 'Manifest'), { recursive: true });
    await fs.mkdir(path.join(odd, 'link'));
    await fs.symlink(path.join(s.staging, 'dev-libs/foo/Manifest'), path.join(odd, 'link', 'Manifest'));
    await fs.mkdir(path.join(odd, 'fifo'));
    execFileSync('mkfifo', [path.join(odd, 'fifo', 'Manifest')]);
    await fs.mkdir(path.join(odd, 'bomb'));
    // 40 MiB once inflated: past what is read ahead, though the verification would take it.
    await fs.writeFile(path.join(odd, 'bomb', 'Manifest.gz'), gzipSync(Buffer.alloc(40 * 1024 * 1024, 0x20)));
    const paths = ['odd/dir/Manifest', 'odd/link/Manifest', 'odd/fifo/Manifest', 'odd/bomb/Manifest.gz', 'odd/none/Manifest', 'Manifest', '.hidden/Manifest', 'dev-libs/foo/Manifest.bz2', 'dev-libs/foo/foo-3.ebuild'];
    const ahead = await readAhead(s.staging, s.base, paths, Impl);
    for (const p of paths) expect(ahead.take(p)).toBeUndefined();
  });

  it('nothing is read once stopped', async () => {
    const Impl = await impl();
    const s = await stage(`stopped-${tag}`);
    const ahead = started(s.staging, s.base, Impl);
    ahead.offer(['dev-libs/foo/Manifest']);
    await ahead.stop();
    ahead.offer(['dev-libs/Manifest.gz']);
    await ahead.idle();
    await sleep(50);
    expect(ahead.take('dev-libs/foo/Manifest')).toBeUndefined();
    expect(ahead.take('dev-libs/Manifest.gz')).toBeUndefined();
  });

  it('once the fill is over, what was offered is still read, and nothing offered after', async () => {
    const Impl = await impl();
    const s = await stage(`ended-${tag}`);
    const ahead = started(s.staging, s.base, Impl);
    ahead.offer(['dev-libs/foo/Manifest']);
    ahead.endOffers();
    ahead.offer(['dev-libs/Manifest.gz']);
    await ahead.idle();
    await sleep(50);
    expect(ahead.take('dev-libs/foo/Manifest')?.text).toContain('foo-2.ebuild');
    expect(ahead.take('dev-libs/Manifest.gz')).toBeUndefined();
  });

  it('once the fill is over, what reads the same again, or was read after, is final; what the fill replaced is not', async () => {
    const Impl = await impl();
    const s = await stage(`final-${tag}`);
    const ahead = started(s.staging, s.base, Impl);
    ahead.offer(['dev-libs/foo/Manifest', 'dev-libs/Manifest.gz']);
    await ahead.idle();
    // The fill goes on: it replaces one of them (same size, one byte
    // other) after it was read ahead, then ends.
    const file = path.join(s.staging, 'dev-libs/Manifest.gz');
    const good = await fs.readFile(file);
    const bad = Buffer.from(good);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    await fs.writeFile(`${file}.new`, bad);
    await fs.rename(`${file}.new`, file);
    // Read ahead but not final yet: the fill may still replace anything.
    const early = started(s.staging, s.base, Impl);
    early.offer(['dev-libs/foo/Manifest']);
    await early.idle();
    expect(early.take('dev-libs/foo/Manifest')?.final).toBeFalsy();
    ahead.endOffers();
    await ahead.idle();
    const same = ahead.take('dev-libs/foo/Manifest');
    expect(same?.final).toBe(true);
    expect(Buffer.from(same?.bytes ?? []).equals(await fs.readFile(path.join(s.staging, 'dev-libs/foo/Manifest')))).toBe(true);
    const replaced = ahead.take('dev-libs/Manifest.gz');
    expect(replaced).toBeDefined();
    expect(replaced?.final).toBeFalsy();
    // Offered before the end and read after it (or read again then): final.
    const late = started(s.staging, s.base, Impl);
    late.offer(['dev-libs/foo/Manifest', 'dev-libs/Manifest.gz']);
    late.endOffers();
    await late.idle();
    expect(late.take('dev-libs/foo/Manifest')?.final).toBe(true);
    // (The replaced one no longer inflates: left to the verification, which says so.)
    expect(late.take('dev-libs/Manifest.gz')).toBeUndefined();
  });
});

describe('what was read ahead is trusted for nothing', () => {
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

  it('a sub-Manifest the fill replaced after it was read ahead is not final when the fill ends: verified as it is now', async () => {
    for (const Impl of [ManifestReadAhead, await built()]) {
      const s = await stage(`replaced-before-end-${Impl === ManifestReadAhead ? 'here' : 'thread'}`);
      const ahead = await readAhead(s.staging, s.base, s.written, Impl);
      const file = path.join(s.staging, 'dev-libs/foo/Manifest');
      const good = await fs.readFile(file, 'utf8');
      const at = good.indexOf('SHA512 ') + 7;
      await fs.writeFile(`${file}.new`, good.slice(0, at) + (good[at] === '0' ? '1' : '0') + good.slice(at + 1));
      await fs.rename(`${file}.new`, file);
      // As a sync does: the fill ends, the verification starts; here after
      // the read-ahead has read everything again.
      ahead.endOffers();
      await ahead.idle();
      await expect(verify(s, ahead)).rejects.toThrow(/^dev-libs\/foo\/Manifest: \w+ hash mismatch/);
    }
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
    expect(r.readAhead).toBe(subManifestsOf(s.written).length - 1);
  });
});

describe('through syncs', () => {
  /** A repo of forty packages, synced and verified once; `change` makes thirty of them change upstream. */
  async function repo(tag: string, type: string): Promise<{ base: string; up: string; conf: string; change: () => Promise<void> }> {
    const base = path.join(dir, tag);
    const up = path.join(base, 'upstream');
    const tree: Record<string, string> = { ...TREE };
    for (let i = 0; i < 40; i++) tree[`dev-util/p${i}/p${i}-1.ebuild`] = 'EAPI=8\n';
    await writeTree(up, tree);
    await writeManifests(up, { key, timestamp: new Date(Date.now() - 60_000) });
    const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${key.pub}\n`, type));
    const first = await runCli(['-c', conf, 'sync', '--json']);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout).results[0].verified).toMatchObject({ incremental: false, readAhead: 0 });
    const change = async (): Promise<void> => {
      // rsync's quick check compares whole-second mtimes: a Manifest rewritten
      // to the same size within the second of the first sync would look unchanged.
      await sleep(1100);
      const changes: Record<string, string> = {};
      for (let i = 0; i < 30; i++) changes[`dev-util/p${i}/p${i}-2.ebuild`] = 'EAPI=8\n';
      await writeTree(up, changes);
      await writeManifests(up, { key });
    };
    return { base, up, conf, change };
  }

  it('rsync, its plan applied in parts: the sync hands what the fill wrote to the read-ahead, and the verification uses it', async () => {
    // In this process the sources run without a build: the reading is on this thread, between the applies.
    const { base, up, conf, change } = await repo('sync-in-process', 'rsync');
    await change();
    const before = process.env.REPOSNAP_APPLY_BATCH;
    process.env.REPOSNAP_APPLY_BATCH = '1';
    try {
      const report = await Repos.load({ path: conf }).get('test').sync();
      expect(report.verified?.incremental).toBe(true);
      expect(report.verified?.readAhead).toBeGreaterThan(0);
      expect(report.verified?.readAhead).toBeLessThanOrEqual((report.verified?.manifests ?? 0) - 1);
    } finally {
      if (before === undefined) delete process.env.REPOSNAP_APPLY_BATCH;
      else process.env.REPOSNAP_APPLY_BATCH = before;
    }
    expect(await readTree(`${base}/repo/`)).toEqual(await readTree(up));
  });

  it.each(['rsync', 'local'])('%s, from the command line (reading on its own thread): the tree verified is upstream', async (type) => {
    const { base, up, conf, change } = await repo(`sync-cli-${type}`, type);
    await change();
    const second = await runCli(['-c', conf, 'sync', '--json'], { env: { REPOSNAP_APPLY_BATCH: '1' } });
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const v = JSON.parse(second.stdout).results[0].verified;
    expect(v.incremental).toBe(true);
    // How many were read ahead in time depends on the CPU left over (the reading thread runs at nice 19).
    expect(v.readAhead).toBeGreaterThanOrEqual(0);
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

function gunzip(b: Buffer): string {
  return gunzipSync(b).toString('utf8');
}
