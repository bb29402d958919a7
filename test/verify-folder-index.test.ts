/**
 * Incremental verification with the base's folder index: only folders
 * touched since the clone are listed, the rest are taken to be the base's.
 * Each case builds a verified base (and its folder index, as its own
 * verification leaves it), a staging tree as a fill leaves it, and checks
 * that the incremental verification with the index agrees with a full one:
 * the same verdict, the same count of files, and fewer folders listed.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyMetaManifest, type MetaManifestResult } from '../src/trust/metamanifest.js';
import { Keyring } from '../src/trust/openpgp.js';
import { listFolderEntries } from '../src/trust/folder-listing.js';
import { folderPlaces, parseFolderIndex, serializeFolderIndex, statMany, walkChangedTree, type FolderIndex, type TreeWalk } from '../src/trust/tree-walk.js';
import { WalkHelper } from '../src/trust/walk-helper.js';
import { forgetKeys, makeSigningKey, sleep, tmpdir, writeManifests, writeTree, type SigningKey, type TreeSpec } from './helpers.js';

let dir: string;
let key: SigningKey;
let ring: Keyring;
beforeAll(async () => {
  dir = tmpdir('folder-index');
  key = makeSigningKey(dir, 'signer');
  ring = await Keyring.open('t', { file: key.pub, position: { file: 'x', line: 0 } });
});
afterAll(async () => {
  await ring.close();
  forgetKeys();
});

const T1 = new Date('2026-11-01T00:00:00Z');
const T2 = new Date('2026-11-20T00:00:00Z');

/** A small Gentoo-shaped tree: categories, packages with files/, a metadata cache covered from its parent. */
function gentooish(version: string): TreeSpec {
  const spec: TreeSpec = {};
  for (const cat of ['app-a', 'app-b', 'dev-c']) {
    for (const pkg of ['one', 'two', 'three']) {
      spec[`${cat}/${pkg}/${pkg}-1.ebuild`] = `EAPI=8 # ${cat}/${pkg}\n`;
      spec[`${cat}/${pkg}/metadata.xml`] = `<pkgmetadata/>\n`;
      spec[`${cat}/${pkg}/files/fix.patch`] = `--- ${pkg}\n`;
      spec[`metadata/md5-cache/${cat}/${pkg}-1`] = `EAPI=8\nDESCRIPTION=${pkg}\n`;
    }
  }
  spec['eclass/a.eclass'] = '# eclass\n';
  spec['profiles/repo_name'] = 'gentoo\n';
  spec['app-a/one/one-1.ebuild'] = `EAPI=8 # version ${version}\n`;
  return spec;
}

interface Case {
  t: string;
  base: string;
  staging: string;
  clonedAt: number;
  index: FolderIndex;
}

/** What upstream changes from T1 to T2. */
interface Change {
  write?: TreeSpec;
  remove?: string[];
}

/**
 * Trees `t/T1` (verified, cloned as the base) and `t/T2`, T1 with `change`
 * (made on a copy, so that folders upstream did not touch keep their times,
 * as on a real mirror); the staging tree is a hardlink clone of the base,
 * then `fill` run on it (an rsync of T2 by default, the way the rsync
 * source writes: new files renamed in). `signed`: run on each of T1 and T2
 * once its Manifests are written (a shape the kit does not write).
 */
async function prepare(
  name: string,
  t1: TreeSpec,
  change: Change,
  opts: { ignore1?: string[]; ignore2?: string[]; extra2?: Record<string, string[]>; signed?: (tree: string) => Promise<void>; fill?: (c: Case) => Promise<void> } = {},
): Promise<Case> {
  const t = path.join(dir, name);
  await writeTree(path.join(t, 'T1'), t1);
  await writeManifests(path.join(t, 'T1'), { key, timestamp: T1, ...(opts.ignore1 ? { ignore: opts.ignore1 } : {}) });
  await opts.signed?.(path.join(t, 'T1'));
  execFileSync('cp', ['-a', path.join(t, 'T1'), path.join(t, 'T2')]);
  for (const r of change.remove ?? []) await fs.rm(path.join(t, 'T2', r), { recursive: true });
  await writeTree(path.join(t, 'T2'), change.write ?? {});
  await writeManifests(path.join(t, 'T2'), { key, timestamp: T2, ...(opts.ignore2 ? { ignore: opts.ignore2 } : {}), ...(opts.extra2 ? { extra: opts.extra2 } : {}) });
  await opts.signed?.(path.join(t, 'T2'));
  const base = path.join(t, 'base');
  execFileSync('cp', ['-a', path.join(t, 'T1'), base]);
  let index: FolderIndex | undefined;
  await verifyMetaManifest({ repo: 't', root: base, keyring: ring, jobs: 1, maxAgeDays: 0, onFolders: (i) => (index = i) });
  const staging = path.join(t, 'staging');
  execFileSync('cp', ['-al', base, staging]);
  const c: Case = { t, base, staging, clonedAt: Date.now(), index: index as FolderIndex };
  await sleep(60);
  if (opts.fill) await opts.fill(c);
  // --checksum: T1 and T2 are written in the same second, where rsync's quick check would take a changed file for the same.
  else execFileSync('rsync', ['-a', '--checksum', '--delete', `${path.join(t, 'T2')}/`, `${staging}/`]);
  return c;
}

const full = (c: Case): Promise<MetaManifestResult> => verifyMetaManifest({ repo: 't', root: c.staging, keyring: ring, jobs: 1, maxAgeDays: 0 });
const indexed = (c: Case, index: FolderIndex = c.index): Promise<MetaManifestResult> =>
  verifyMetaManifest({ repo: 't', root: c.staging, keyring: ring, jobs: 1, maxAgeDays: 0, base: { root: c.base, clonedAt: c.clonedAt, folders: index } });

/** Copy `files` of T2 into the staging tree, each renamed in as a fill writes it. */
async function copyIn(c: Case, files: string[]): Promise<void> {
  for (const f of files) {
    const to = path.join(c.staging, f);
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.copyFile(path.join(c.t, 'T2', f), `${to}.new`);
    await fs.rename(`${to}.new`, to);
  }
}

/**
 * Upstream changes every kind of shape: a folder goes, one comes, a file
 * becomes a folder, a folder with files becomes a file, and two folders
 * whose sub-folders the index names become something else (app-a/three/files
 * a file; dev-c/two, which held files/, a file too: ENOTDIR below it).
 */
function reshaped(): { t1: TreeSpec; change: Change } {
  const t1: TreeSpec = { ...gentooish('1'), 'dev-c/gone/gone-1.ebuild': 'x\n', 'app-b/two/files': 'a file, later a folder\n' };
  delete t1['app-b/two/files/fix.patch'];
  return {
    t1,
    change: {
      remove: ['dev-c/gone', 'app-b/two/files', 'app-a/three/files', 'dev-c/two'],
      write: {
        'dev-c/new/new-1.ebuild': 'y\n',
        'dev-c/new/files/n.patch': 'n\n',
        'app-a/three/files': 'a folder, now a file\n',
        'app-b/two/files/fix.patch': 'now in a folder\n',
        'dev-c/two': 'now a file\n',
        'app-a/one/one-1.ebuild': 'EAPI=8 # 2\n',
      },
    },
  };
}

describe('incremental verification with the folder index', () => {
  it('lists only the touched folders, and counts what a full verification counts', async () => {
    const c = await prepare('good', gentooish('1'), { write: { 'app-a/one/one-1.ebuild': 'EAPI=8 # version 2\n', 'metadata/md5-cache/app-a/one-1': 'EAPI=8\nDESCRIPTION=new\n' } });
    const f = await full(c);
    const i = await indexed(c);
    expect(i.files).toBe(f.files);
    expect(i.folders).toBe(f.folders);
    expect(f.foldersListed).toBe(f.folders);
    // The top, app-a, app-a/one, metadata (its Manifest.gz), md5-cache and md5-cache/app-a, at most.
    expect(i.foldersListed).toBeLessThanOrEqual(6);
    expect(i.hashed).toBeLessThan(f.hashed);
    // Its count includes the files of folders whose Manifests were not read.
    expect(i.skippedManifests).toBeGreaterThan(0);
  });

  it('takes in new, removed and replaced folders', async () => {
    const { t1, change } = reshaped();
    const c = await prepare('shapes', t1, change);
    const f = await full(c);
    const i = await indexed(c);
    expect(i.files).toBe(f.files);
    expect(i.folders).toBe(f.folders);
    expect(i.foldersListed).toBeLessThan(i.folders);
  });

  it('takes in a folder replaced by a file where the index names folders below it', async () => {
    // dev-c/two held files/; upstream made dev-c/two a file: the index's
    // dev-c/two/files now lies under a file (ENOTDIR, not ENOENT).
    const c = await prepare('folder-to-file', gentooish('1'), { remove: ['dev-c/two'], write: { 'dev-c/two': 'now a file\n' } });
    const f = await full(c);
    const i = await indexed(c);
    expect(i.files).toBe(f.files);
    expect(i.folders).toBe(f.folders);
  });

  it('finds a file left behind in an untouched folder after upstream dropped its entry', async () => {
    // The fill brings the new Manifests but leaves the dropped file (and its
    // folder, which has no Manifest of its own) alone.
    const c = await prepare('left-behind', gentooish('1'), { remove: ['dev-c/two/files/fix.patch'] }, { fill: (c) => copyIn(c, ['Manifest', 'dev-c/Manifest.gz', 'dev-c/two/Manifest']) });
    await expect(full(c)).rejects.toThrow(/dev-c\/two\/files\/fix\.patch: stray file/);
    await expect(indexed(c)).rejects.toThrow(/dev-c\/two\/files\/fix\.patch: stray file/);
  });

  it('finds the files of a folder whose IGNORE upstream dropped', async () => {
    const t1 = { ...gentooish('1'), 'local/tool.sh': 'mine\n' };
    // Upstream removes local/ and its IGNORE; the fill brings the new top-level Manifest but leaves local/ alone.
    const c = await prepare('ignore-dropped', t1, { remove: ['local'] }, { ignore1: ['local'], fill: (c) => copyIn(c, ['Manifest']) });
    await expect(full(c)).rejects.toThrow(/local\/tool\.sh: stray file/);
    await expect(indexed(c)).rejects.toThrow(/local\/tool\.sh: stray file/);
  });

  it('hashes a file of an untouched folder whose entry changed', async () => {
    // The new Manifests arrive, the new patch does not: the old one must not pass for it.
    const c = await prepare('entry-changed', gentooish('1'), { write: { 'dev-c/two/files/fix.patch': 'a fixed patch\n' } }, { fill: (c) => copyIn(c, ['Manifest', 'dev-c/Manifest.gz', 'dev-c/two/Manifest']) });
    await expect(full(c)).rejects.toThrow(/dev-c\/two\/files\/fix\.patch: size mismatch/);
    await expect(indexed(c)).rejects.toThrow(/dev-c\/two\/files\/fix\.patch: size mismatch/);
  });

  // A changed category Manifest keeps its line for each package that did
  // not change; the package's folder is then not listed, and its
  // sub-Manifest is the base's, unless something below the folder changed.
  it.each([
    ['a file changed in its files/', 'dev-c/two/files', async (c: Case) => fs.writeFile(path.join(c.staging, 'dev-c/two/files/new'), '--- trojaned\n').then(() => fs.rename(path.join(c.staging, 'dev-c/two/files/new'), path.join(c.staging, 'dev-c/two/files/fix.patch')))],
    ['a file planted a folder further down', 'dev-c/two/files/deep', async (c: Case) => fs.writeFile(path.join(c.staging, 'dev-c/two/files/deep/planted.sh'), 'evil\n')],
  ])('finds %s, below a package folder not listed, in a category whose Manifest changed', async (what, listed, tamper) => {
    const t1 = { ...gentooish('1'), 'dev-c/two/files/deep/x.patch': 'x\n' };
    const c = await prepare(`below-package-${what.replace(/\W+/g, '-')}`, t1, { write: { 'dev-c/new/new-1.ebuild': 'y\n' } }, {
      fill: async (c) => {
        execFileSync('rsync', ['-a', '--checksum', '--delete', `${path.join(c.t, 'T2')}/`, `${c.staging}/`]);
        await tamper(c);
      },
    });
    // The category's Manifest changed, and still has the package's line, word for word.
    const category = (root: string): string => execFileSync('gzip', ['-dc', path.join(root, 'dev-c/Manifest.gz')], { encoding: 'utf8' });
    expect(category(c.staging)).not.toBe(category(c.base));
    const line = category(c.base).split('\n').find((l) => l.startsWith('MANIFEST two/Manifest ')) as string;
    expect(category(c.staging).split('\n')).toContain(line);
    // Of the package's folders, only the one the file was written in is listed.
    const walk = await walkChangedTree(c.staging, new Set(), c.index, () => c.clonedAt + 40);
    expect(['dev-c/two', 'dev-c/two/files', 'dev-c/two/files/deep'].filter((f) => !walk?.unlisted.has(f))).toEqual([listed]);
    // Its count of the files below the package's folder is what is there now.
    const there = execFileSync('find', [path.join(c.staging, 'dev-c/two'), '!', '-type', 'd'], { encoding: 'utf8' }).trim().split('\n');
    expect(walk?.filesBelow('dev-c/two')).toBe(there.length);
    const why = /^dev-c\/two\/files\/(fix\.patch: (size|\w+ hash) mismatch|deep\/planted\.sh: stray file)/;
    await expect(full(c)).rejects.toThrow(why);
    await expect(indexed(c)).rejects.toThrow(why);
  });

  it("reads again a package's sub-Manifest that is a symlink, in a folder not listed: where it leads may have changed", async () => {
    // The package's Manifest is a link into an IGNOREd folder, through a
    // link to a folder there; the category's Manifest changes, and keeps
    // its line for the package.
    const t1 = { ...gentooish('1'), 'local/README': 'mine\n' };
    const c = await prepare('package-manifest-link', t1, { write: { 'dev-c/new/new-1.ebuild': 'y\n' } }, {
      ignore1: ['local'],
      ignore2: ['local'],
      signed: async (tree) => {
        const manifest = path.join(tree, 'dev-c/two/Manifest');
        const text = await fs.readFile(manifest, 'utf8');
        await writeTree(path.join(tree, 'local'), {
          'a/two.Manifest': text,
          // Another Manifest, as old as the first: one that no longer lists the patch.
          'b/two.Manifest': text.split('\n').filter((l) => !l.includes('fix.patch')).join('\n'),
          cur: { symlink: 'a' },
        });
        await fs.rm(manifest);
        await fs.symlink('../../local/cur/two.Manifest', manifest);
      },
      fill: async (c) => {
        // What changed upstream, renamed in; the package's folder left alone.
        await copyIn(c, ['Manifest', 'dev-c/Manifest.gz', 'dev-c/new/Manifest', 'dev-c/new/new-1.ebuild']);
        // The link on the way is turned to the other folder: neither the
        // package's link nor the file it now leads to is new.
        await fs.symlink('b', path.join(c.staging, 'local/cur.new'));
        await fs.rename(path.join(c.staging, 'local/cur.new'), path.join(c.staging, 'local/cur'));
      },
    });
    const walk = await walkChangedTree(c.staging, new Set(), c.index, () => c.clonedAt + 40);
    expect(walk?.unlisted.has('dev-c/two')).toBe(true);
    const link = walk?.nodes.get('dev-c/two/Manifest');
    expect(link?.target).toBe(path.join(c.staging, 'local/b/two.Manifest'));
    expect(link?.ctimeMs).toBeLessThan(walk?.untouchedBefore ?? -Infinity);
    const why = /^dev-c\/two\/Manifest: (size|\w+ hash) mismatch/;
    await expect(full(c)).rejects.toThrow(why);
    await expect(indexed(c)).rejects.toThrow(why);
  });

  it('resolves a symlink of an untouched folder again: what it leads to may have changed', async () => {
    const t1 = { ...gentooish('1'), 'local/shared.patch': 'the patch\n', 'app-b/one/files/shared.patch': { symlink: '../../../local/shared.patch' } };
    // Nothing changes upstream; the file the link leads to (in an IGNOREd folder) is swapped.
    const c = await prepare('symlink', t1, {}, {
      ignore1: ['local'],
      ignore2: ['local'],
      fill: async (c) => {
        await fs.writeFile(path.join(c.staging, 'local', 'new'), 'the patch, trojaned\n');
        await fs.rename(path.join(c.staging, 'local', 'new'), path.join(c.staging, 'local', 'shared.patch'));
      },
    });
    await expect(full(c)).rejects.toThrow(/app-b\/one\/files\/shared\.patch: size mismatch/);
    await expect(indexed(c)).rejects.toThrow(/app-b\/one\/files\/shared\.patch: size mismatch/);
  });

  // A line passed over as the base's (about the base's file, or a
  // sub-Manifest over a folder all the base's) is taken in after all when a
  // line read after it speaks of its path: here a new IGNORE, which makes
  // an unchanged entry one inside an IGNOREd path.
  it.each([
    ['of the folder holding the file, in the same Manifest', { 'dev-c/two': ['IGNORE files'] }],
    ['of the file itself, in the same Manifest', { 'dev-c/two': ['IGNORE files/fix.patch'] }],
    ["of a folder inside a package, in the category's Manifest, whose sub-Manifest is the base's", { 'dev-c': ['IGNORE two/files'] }],
  ])('refuses an unchanged entry inside a new IGNORE %s, as a full verification does', async (what, extra) => {
    const c = await prepare(`ignored-entry-${what.replace(/\W+/g, '-')}`, gentooish('1'), { write: { 'dev-c/new/new-1.ebuild': 'y\n' } }, { extra2: extra });
    const why = /dev-c\/two\/files\/fix\.patch: listed in dev-c\/two\/Manifest but inside an IGNOREd path/;
    await expect(full(c)).rejects.toThrow(why);
    await expect(indexed(c)).rejects.toThrow(why);
  });

  it('refuses an unchanged entry of a listed folder inside a new IGNORE, as a full verification does', async () => {
    // dev-c/two is listed (its Manifest is new); its ebuild is untouched, so
    // the ebuild's unchanged line waits on the walk's node for the file
    // until the new IGNORE, read after it, wakes it.
    const c = await prepare('ignored-listed-entry', gentooish('1'), { write: { 'dev-c/new/new-1.ebuild': 'y\n' } }, { extra2: { 'dev-c/two': ['IGNORE two-1.ebuild'] } });
    const why = /^dev-c\/two\/two-1\.ebuild: listed in dev-c\/two\/Manifest but inside an IGNOREd path$/;
    await expect(full(c)).rejects.toThrow(why);
    const walk = await walkChangedTree(c.staging, new Set(), c.index, () => c.clonedAt + 40);
    // Untouched: its ctime is from the clone (a hard link moves it), before the walk's bound.
    expect(walk?.nodes.get('dev-c/two/two-1.ebuild')?.ctimeMs).toBeLessThan(walk?.untouchedBefore ?? -Infinity);
    await expect(indexed(c)).rejects.toThrow(why);
  });

  it('refuses a new entry that names a folder the walk did not list, as a full verification does', async () => {
    // dev-c/two/files is untouched: the incremental walk leaves it unlisted.
    const entry = `DATA two/files 5 SHA512 ${'0'.repeat(128)}`;
    const c = await prepare('entry-names-folder', gentooish('1'), { write: { 'dev-c/new/new-1.ebuild': 'y\n' } }, { extra2: { 'dev-c': [entry] } });
    const why = /^dev-c\/two\/files: a folder, listed as a file in dev-c\/Manifest\.gz:\d+$/;
    await expect(full(c)).rejects.toThrow(why);
    await expect(indexed(c)).rejects.toThrow(why);
  });

  it('lists every folder when the index does not fit the tree, so nothing it leaves out goes unseen', async () => {
    const c = await prepare('misfit', gentooish('1'), { write: { 'app-a/one/one-1.ebuild': 'EAPI=8 # version 2\n' } });
    // A file planted in a folder the index leaves out (a damaged index, or another tree's).
    await fs.writeFile(path.join(c.staging, 'dev-c', 'three', 'files', 'planted.sh'), 'evil\n');
    const damaged: FolderIndex = new Map([...c.index].filter(([rel]) => rel !== 'dev-c/three/files'));
    await expect(full(c)).rejects.toThrow(/dev-c\/three\/files\/planted\.sh: stray file/);
    await expect(indexed(c, damaged)).rejects.toThrow(/dev-c\/three\/files\/planted\.sh: stray file/);
  });

  it('gives the next verification an index equal to what a full walk finds', async () => {
    const c = await prepare('next-index', gentooish('1'), { write: { 'app-a/one/one-1.ebuild': 'EAPI=8 # version 2\n', 'dev-c/new/new-1.ebuild': 'y\n' } });
    let fromFull: FolderIndex | undefined;
    let fromIndexed: FolderIndex | undefined;
    await verifyMetaManifest({ repo: 't', root: c.staging, keyring: ring, jobs: 1, maxAgeDays: 0, onFolders: (i) => (fromFull = i) });
    await verifyMetaManifest({ repo: 't', root: c.staging, keyring: ring, jobs: 1, maxAgeDays: 0, base: { root: c.base, clonedAt: c.clonedAt, folders: c.index }, onFolders: (i) => (fromIndexed = i) });
    const sorted = (i: FolderIndex | undefined) => [...(i ?? [])].sort(([a], [b]) => a.localeCompare(b));
    expect(sorted(fromIndexed)).toEqual(sorted(fromFull));
    expect(fromFull?.has('dev-c/new')).toBe(true);
  });
});

/** A walk's findings, in an order that can be compared. */
const shape = (w: TreeWalk | undefined) => ({
  nodes: [...(w?.nodes ?? [])].sort(([a], [b]) => a.localeCompare(b)),
  unlisted: [...(w?.unlisted ?? [])].sort(),
  folders: [...(w?.folders ?? [])].sort(([a], [b]) => a.localeCompare(b)),
  untouchedBefore: w?.untouchedBefore,
});

describe('stats many at a time (the walk on a cold cache)', () => {
  it('walks a changed tree the same way on the cold-cache path as on the warm one', async () => {
    const { t1, change } = reshaped();
    const c = await prepare('cold-walk', t1, change);
    const boundary = (): number => c.clonedAt + 40;
    const warm = await walkChangedTree(c.staging, new Set(), c.index, boundary);
    // One folder stat'ed one at a time, judged slow: the rest go through statMany.
    const cold = await walkChangedTree(c.staging, new Set(), c.index, boundary, { coldProbe: 1, coldStatMs: -1 });
    expect(warm).toBeDefined();
    expect(shape(cold)).toEqual(shape(warm));
    expect(warm?.unlisted.size).toBeGreaterThan(0);
    expect(warm?.nodes.has('dev-c/new/new-1.ebuild')).toBe(true);
    expect(warm?.nodes.get('dev-c/two')?.kind).toBe('file');
  });

  it('takes no index that lists a folder before its parent: its sub-tree would never be walked', async () => {
    const { t1, change } = reshaped();
    const c = await prepare('parents-first', t1, change);
    const boundary = (): number => c.clonedAt + 40;
    expect(await walkChangedTree(c.staging, new Set(), c.index, boundary)).toBeDefined();
    // The same folders, the deepest first. Where folders count their links
    // (not btrfs) the count also gives it away; the order alone must.
    const reversed: FolderIndex = new Map([...c.index].reverse());
    expect(folderPlaces(c.index).parentsFirst).toBe(true);
    expect(folderPlaces(reversed).parentsFirst).toBe(false);
    // Read from a snapshot's record, it is no index at all.
    expect(parseFolderIndex(serializeFolderIndex(c.index))?.size).toBe(c.index.size);
    expect(parseFolderIndex(serializeFolderIndex(reversed))).toBeUndefined();
    expect(await walkChangedTree(c.staging, new Set(), reversed, boundary)).toBeUndefined();
  });

  it('walks every folder once whatever order the index and the listing give a folder\'s sub-folders in', async () => {
    // The walk meets a touched folder's sub-folders in the order the index
    // was made in, and looks one up by path only when the names differ:
    // sub-folders added, removed and made again in between, in an index
    // sorted one way and the other, must still each be walked once.
    const c = await prepare('sibling-order', gentooish('1'), {}, {
      fill: async (c) => {
        const cat = path.join(c.staging, 'app-a');
        await fs.mkdir(path.join(cat, 'aa-new'));
        await fs.writeFile(path.join(cat, 'aa-new', 'aa-new-1.ebuild'), 'x\n');
        await fs.rm(path.join(cat, 'two'), { recursive: true });
        await fs.mkdir(path.join(cat, 'zz-new'));
        await fs.rm(path.join(cat, 'one'), { recursive: true });
        await fs.mkdir(path.join(cat, 'one'));
        await fs.writeFile(path.join(cat, 'one', 'one-2.ebuild'), 'y\n');
      },
    });
    const boundary = (): number => c.clonedAt + 40;
    const depth = (rel: string): number => (rel === '' ? 0 : rel.split('/').length);
    const everyFolder = (await fs.readdir(c.staging, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isDirectory())
      .map((e) => path.relative(c.staging, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)))
      .concat('')
      .sort();
    const sorts = [undefined, (a: string, b: string) => a.localeCompare(b), (a: string, b: string) => b.localeCompare(a)];
    for (const order of sorts) {
      // Parents first still.
      const index: FolderIndex = order ? new Map([...c.index].sort(([a], [b]) => depth(a) - depth(b) || order(a, b))) : c.index;
      expect(folderPlaces(index).parentsFirst).toBe(true);
      const walked = await walkChangedTree(c.staging, new Set(), index, boundary);
      expect([...(walked?.folders.keys() ?? [])].sort()).toEqual(everyFolder);
      expect(walked?.nodes.get('app-a/one/one-2.ebuild')?.kind).toBe('file');
      expect(walked?.nodes.get('app-a/aa-new/aa-new-1.ebuild')?.kind).toBe('file');
      expect(walked?.nodes.has('app-a/one/one-1.ebuild')).toBe(false);
      expect(walked?.unlisted.has('app-a/three')).toBe(true);
    }
  });

  it('gives each path its place; nothing for a missing one or one under a file; fails on any other error', async () => {
    const root = path.join(dir, 'stat-many');
    await writeTree(root, { 'a/x': 'x\n', 'b/c/y': 'y\n', f: 'a file\n' });
    await fs.symlink('loop', path.join(root, 'loop'));
    const order = ['', 'a', 'b', 'b/c', 'gone', 'f/under', 'a/x'];
    const seen = new Map<number, string>();
    await statMany(order, 1, (rel) => path.join(root, rel), (at, st) => seen.set(at, st === undefined ? 'none' : st.isDirectory() ? 'dir' : 'file'));
    // From place 1 on, each once, whatever order they came back in.
    expect([...seen.entries()].sort((x, y) => x[0] - y[0])).toEqual([
      [1, 'dir'],
      [2, 'dir'],
      [3, 'dir'],
      [4, 'none'],
      [5, 'none'],
      [6, 'file'],
    ]);
    await expect(statMany(['loop/x'], 0, (rel) => path.join(root, rel), () => undefined)).rejects.toThrow(/ELOOP/);
    await statMany(order, order.length, (rel) => path.join(root, rel), () => {
      throw new Error('nothing to stat');
    });
  });
});

describe('the walk shared with a helper thread', () => {
  type HelperClass = typeof WalkHelper;
  // The thread runs the built module (the sources have no worker script to start).
  const built = async (): Promise<HelperClass> => ((await import(new URL('../dist/trust/walk-helper.js', import.meta.url).href)) as { WalkHelper: HelperClass }).WalkHelper;

  it('finds with the thread what the calling thread finds, and what the thread cannot do the caller does', async () => {
    const root = path.join(dir, 'helper-stats');
    await writeTree(root, { 'a/x': 'x\n', 'b/c/y': 'y\n', 'b/c/z': 'zz\n', f: 'a file\n' });
    await fs.symlink('loop', path.join(root, 'loop'));
    await fs.symlink('x', path.join(root, 'a/link'));
    await fs.mkdir(path.join(root, 'a/.hidden'));
    const order = ['', 'a', 'b', 'b/c', 'gone', 'f/under', 'f'].map((rel) => path.join(root, rel));
    const Built = await built();
    // The thread alone (the caller takes nothing), and no thread at all: the caller does it all.
    for (const helper of [new Built({ callerTakes: false }), new WalkHelper({ callerTakes: false })]) {
      expect(helper.threaded).toBe(helper instanceof Built && !(helper instanceof WalkHelper));
      const { ctimes, links, fine } = await helper.statFolders(order);
      expect([...links].map((l) => l > 0)).toEqual([true, true, true, true, false, false, false]);
      for (const at of [0, 1, 2, 3]) expect(ctimes[at]).toBe(lstatSync(order[at] as string).ctimeMs);
      expect(fine).toBe(lstatSync(root).ctimeMs % 1000 !== 0 || [...ctimes].some((c) => c % 1000 !== 0));
      const listed = await helper.listFolders([path.join(root, 'a'), path.join(root, 'b/c'), path.join(root, 'gone')]);
      expect(listed[0]).toEqual(listFolderEntries(path.join(root, 'a')));
      expect(listed[0]?.names.sort()).toEqual(['link', 'x']);
      expect(listed[1]?.sizes).toEqual(new Float64Array(listFolderEntries(path.join(root, 'b/c')).sizes));
      expect(listed[2]).toBeUndefined();
      // An error that is not "nothing there" is the caller's to report, whichever thread met it first.
      await expect(helper.statFolders([path.join(root, 'loop/x')])).rejects.toThrow(/ELOOP/);
      await helper.close();
    }
  });

  it('walks a changed tree the same way with the thread doing the stats as without a thread', async () => {
    const { t1, change } = reshaped();
    const c = await prepare('helper-walk', t1, change);
    const boundary = (): number => c.clonedAt + 40;
    const alone = await walkChangedTree(c.staging, new Set(), c.index, boundary);
    const helper = new (await built())({ callerTakes: false });
    try {
      const shared = await walkChangedTree(c.staging, new Set(), c.index, boundary, {}, helper);
      expect(alone).toBeDefined();
      expect(shape(shared)).toEqual(shape(alone));
      expect(alone?.nodes.has('dev-c/new/new-1.ebuild')).toBe(true);
    } finally {
      await helper.close();
    }
  });
});

describe('an error in the walk', () => {
  it('is the error reported, and the keyring is left once gpg is done with it', async () => {
    // A folder of the index replaced by a symlink to itself: stat'ing the folder below it fails with ELOOP.
    const c = await prepare('walk-error', gentooish('1'), { write: { 'app-a/one/one-1.ebuild': 'EAPI=8 # 2\n' } }, {
      fill: async (k) => {
        await fs.rm(path.join(k.staging, 'app-b/one'), { recursive: true });
        await fs.symlink('one', path.join(k.staging, 'app-b/one'));
      },
    });
    // Several times: without the wait, the removal met gpg's files in about one run in three.
    for (let i = 0; i < 5; i++) {
      const own = await Keyring.open('t', { file: key.pub, position: { file: 'x', line: 0 } });
      await expect(verifyMetaManifest({ repo: 't', root: c.staging, keyring: own, jobs: 1, maxAgeDays: 0, base: { root: c.base, clonedAt: c.clonedAt, folders: c.index } })).rejects.toThrow(/ELOOP/);
      // At once, as a sync does: gpg must not be writing in the home any more.
      await expect(own.close()).resolves.toBeUndefined();
    }
  });
});
