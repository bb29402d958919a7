/**
 * The test kit's GLEP 74 Manifest writer, which MetaManifest verification is
 * tested against: its trees are checked here with hashes computed apart from
 * it and with gpg, and, where gemato (Gentoo's own Manifest tool) is on PATH,
 * by gemato itself, so that a mistake in the kit cannot hide the same mistake
 * in reposnap.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { forgetKeys, makeSigningKey, tmpdir, writeManifests, writeTree, type TreeSpec } from './helpers.js';

afterAll(forgetKeys);

const NODE_HASH: Record<string, string> = { BLAKE2B: 'blake2b512', SHA512: 'sha512', SHA256: 'sha256', SHA3_256: 'sha3-256', SHA3_512: 'sha3-512' };
const IGNORE = ['distfiles', 'local', 'packages'];

/** Something of every kind the layout treats apart. */
const TREE: TreeSpec = {
  'header.txt': 'top-level file\n',
  'cat-a/metadata.xml': '<catmetadata/>\n',
  'cat-a/pkg-one/pkg-one-1.ebuild': 'EAPI=8\nSLOT=0\n',
  'cat-a/pkg-one/files/fix it.patch': '--- a\n+++ b\n',
  'cat-a/pkg-one/files/deeper/more.patch': 'more\n',
  'cat-a/pkg-one/files/tab\there\\back': 'escaped name\n',
  'cat-a/pkg-one/files/nbsp\u00a0é': 'escaped, but not the é\n',
  'cat-a/pkg-one/.hidden': 'never listed\n',
  'cat-a/pkg-one/Manifest': 'DIST stale.tar.gz 1 BLAKE2B 00\n',
  'cat-a/.cache/junk': 'never listed\n',
  'cat-a/pkg-two/metadata.xml': '<pkgmetadata/>\n',
  'cat-a/pkg-two/link.ebuild': { symlink: '../pkg-one/pkg-one-1.ebuild' },
  'eclass/foo.eclass': '# eclass\n',
  'metadata/md5-cache/cat-a/pkg-one-1': 'EAPI=8\n',
  'distfiles/pkg-one-1.tar.gz': 'ignored\n',
  'local/x': 'ignored\n',
  '.git/config': 'never listed\n',
};

/** The signed text of a clearsigned message, dash-escaping undone (RFC 4880 7.1). */
function signedText(armored: string): string {
  const m = /^-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n([\s\S]*?)\n?-----BEGIN PGP SIGNATURE-----\n[\s\S]*-----END PGP SIGNATURE-----\n$/.exec(armored);
  if (!m) throw new Error(`not a clearsigned message:\n${armored}`);
  return `${(m[1] as string).replace(/^- /gm, '')}\n`;
}

interface Line {
  tag: string;
  raw: string;
  path: string;
  size?: number;
  hashes: Record<string, string>;
}

function unescapePath(p: string): string {
  return p.replace(/\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8}))/g, (_, x?: string, u?: string, U?: string) =>
    String.fromCodePoint(parseInt((x ?? u ?? U) as string, 16)),
  );
}

function parse(text: string): Line[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((raw) => {
      const [tag, p, size, ...rest] = raw.split(' ') as [string, string, string | undefined, ...string[]];
      const hashes: Record<string, string> = {};
      for (let i = 0; i < rest.length; i += 2) hashes[rest[i] as string] = rest[i + 1] as string;
      return { tag, raw, path: tag === 'TIMESTAMP' ? p : unescapePath(p), size: size === undefined ? undefined : Number(size), hashes };
    });
}

/** Every DATA and MANIFEST entry of `lines` matches the file it names under `dir`, by size and every listed hash. */
async function checkEntries(dir: string, lines: Line[], hashes: string[]): Promise<void> {
  for (const l of lines.filter((x) => x.tag === 'DATA' || x.tag === 'MANIFEST')) {
    const body = await fs.readFile(path.join(dir, l.path));
    expect(l.size, l.raw).toBe(body.length);
    expect(Object.keys(l.hashes), l.raw).toEqual(hashes);
    for (const h of hashes) expect(l.hashes[h], `${h} of ${l.path}`).toBe(createHash(NODE_HASH[h] as string).update(body).digest('hex'));
  }
}

const summary = (lines: Line[]): string[] => lines.map((l) => `${l.tag} ${l.path}`);

describe('writeManifests', () => {
  it('writes the rsync mirror layout: signed top-level Manifest, Manifest.gz per category, Manifest per package', async () => {
    const dir = tmpdir('manifest-writer');
    const root = path.join(dir, 'tree');
    await writeTree(root, TREE);
    const key = makeSigningKey(dir, 'signer');
    await writeManifests(root, { key, timestamp: new Date('2026-05-04T03:02:01.789Z'), ignore: IGNORE });

    const armored = await fs.readFile(path.join(root, 'Manifest'), 'utf8');
    const top = parse(signedText(armored));
    expect(summary(top)).toEqual([
      'DATA header.txt',
      'IGNORE distfiles',
      'IGNORE local',
      'IGNORE packages',
      'MANIFEST cat-a/Manifest.gz',
      'MANIFEST eclass/Manifest.gz',
      'MANIFEST metadata/Manifest.gz',
      'TIMESTAMP 2026-05-04T03:02:01Z',
    ]);
    await checkEntries(root, top, ['BLAKE2B', 'SHA512']);

    // gpgv with a keyring made from the public key file alone: the signature is the signer's.
    const keyring = path.join(dir, 'signer.gpg');
    const scratch = path.join(dir, 'gnupg-scratch');
    mkdirSync(scratch, { mode: 0o700 });
    execFileSync('gpg', ['--homedir', scratch, '--batch', '--yes', '--output', keyring, '--dearmor', key.pub], { stdio: 'ignore' });
    const good = spawnSync('gpgv', ['--keyring', keyring, path.join(root, 'Manifest')], { encoding: 'utf8' });
    expect(good.status, good.stderr).toBe(0);
    expect(good.stderr).toContain(key.fpr.slice(-16));

    const cat = parse(gunzipSync(await fs.readFile(path.join(root, 'cat-a', 'Manifest.gz'))).toString('utf8'));
    expect(summary(cat)).toEqual(['DATA metadata.xml', 'MANIFEST pkg-one/Manifest', 'MANIFEST pkg-two/Manifest']);
    await checkEntries(path.join(root, 'cat-a'), cat, ['BLAKE2B', 'SHA512']);

    const pkgOne = parse(await fs.readFile(path.join(root, 'cat-a', 'pkg-one', 'Manifest'), 'utf8'));
    // The Manifest that was there is replaced, not listed; .hidden is never listed.
    expect(summary(pkgOne)).toEqual([
      'DATA files/deeper/more.patch',
      'DATA files/fix it.patch',
      'DATA files/nbsp\u00a0é',
      'DATA files/tab\there\\back',
      'DATA pkg-one-1.ebuild',
    ]);
    expect(pkgOne.map((l) => l.raw.split(' ')[1])).toEqual(['files/deeper/more.patch', 'files/fix\\x20it.patch', 'files/nbsp\\u00A0é', 'files/tab\\x09here\\x5Cback', 'pkg-one-1.ebuild']);
    await checkEntries(path.join(root, 'cat-a', 'pkg-one'), pkgOne, ['BLAKE2B', 'SHA512']);

    // A symlink is listed with its target's content.
    const pkgTwo = parse(await fs.readFile(path.join(root, 'cat-a', 'pkg-two', 'Manifest'), 'utf8'));
    expect(summary(pkgTwo)).toEqual(['DATA link.ebuild', 'DATA metadata.xml']);
    await checkEntries(path.join(root, 'cat-a', 'pkg-two'), pkgTwo, ['BLAKE2B', 'SHA512']);

    const meta = parse(gunzipSync(await fs.readFile(path.join(root, 'metadata', 'Manifest.gz'))).toString('utf8'));
    expect(summary(meta)).toEqual(['MANIFEST md5-cache/Manifest.gz']);
    // The metadata cache is covered category by category, as on the mirror.
    const cache = parse(gunzipSync(await fs.readFile(path.join(root, 'metadata', 'md5-cache', 'Manifest.gz'))).toString('utf8'));
    expect(summary(cache)).toEqual(['MANIFEST cat-a/Manifest.gz']);
    await checkEntries(path.join(root, 'metadata', 'md5-cache'), cache, ['BLAKE2B', 'SHA512']);
    const cacheCat = parse(gunzipSync(await fs.readFile(path.join(root, 'metadata', 'md5-cache', 'cat-a', 'Manifest.gz'))).toString('utf8'));
    expect(summary(cacheCat)).toEqual(['DATA pkg-one-1']);
    await checkEntries(path.join(root, 'metadata', 'md5-cache', 'cat-a'), cacheCat, ['BLAKE2B', 'SHA512']);

    // Ignored and dot folders get no Manifest.
    for (const p of ['distfiles/Manifest', 'local/Manifest.gz', '.git/Manifest.gz', 'cat-a/.cache/Manifest']) await expect(fs.lstat(path.join(root, p)), p).rejects.toThrow();

    // Another key's keyring does not verify it.
    const stranger = makeSigningKey(dir, 'stranger');
    const strangerRing = path.join(dir, 'stranger.gpg');
    execFileSync('gpg', ['--homedir', scratch, '--batch', '--yes', '--output', strangerRing, '--dearmor', stranger.pub], { stdio: 'ignore' });
    expect(spawnSync('gpgv', ['--keyring', strangerRing, path.join(root, 'Manifest')]).status).not.toBe(0);
  });

  it('rewrites a changed tree correctly, with other hashes and uncompressed category Manifests; same input, same bytes', async () => {
    const dir = tmpdir('manifest-writer');
    const root = path.join(dir, 'tree');
    await writeTree(root, TREE);
    await writeManifests(root, { ignore: IGNORE });
    await fs.writeFile(path.join(root, 'cat-a', 'pkg-one', 'pkg-one-1.ebuild'), 'EAPI=8\nSLOT=1\n');
    await fs.rm(path.join(root, 'cat-a', 'pkg-two'), { recursive: true });
    await writeTree(root, { 'cat-a/pkg-three/pkg-three-2.ebuild': 'EAPI=8\n', 'eclass/bar.eclass': '# bar\n', 'profiles/arch/amd64/make.defaults': 'ARCH=amd64\n', 'profiles/repo_name': 'gentoo\n' });

    const hashes = ['SHA256', 'SHA3_256', 'SHA3_512'];
    const opts = { compress: false, hashes, ignore: IGNORE, timestamp: new Date('2026-01-02T03:04:05Z') };
    await writeManifests(root, opts);
    await expect(fs.lstat(path.join(root, 'cat-a', 'Manifest.gz'))).rejects.toThrow();
    const topText = await fs.readFile(path.join(root, 'Manifest'), 'utf8');
    expect(topText).not.toContain('PGP');
    const top = parse(topText);
    expect(summary(top).filter((s) => s.startsWith('MANIFEST'))).toEqual(['MANIFEST cat-a/Manifest', 'MANIFEST eclass/Manifest', 'MANIFEST metadata/Manifest', 'MANIFEST profiles/Manifest']);
    await checkEntries(root, top, hashes);
    const cat = parse(await fs.readFile(path.join(root, 'cat-a', 'Manifest'), 'utf8'));
    expect(summary(cat)).toEqual(['DATA metadata.xml', 'MANIFEST pkg-one/Manifest', 'MANIFEST pkg-three/Manifest']);
    await checkEntries(path.join(root, 'cat-a'), cat, hashes);
    const pkgOne = parse(await fs.readFile(path.join(root, 'cat-a', 'pkg-one', 'Manifest'), 'utf8'));
    expect(summary(pkgOne)).toContain('DATA pkg-one-1.ebuild');
    await checkEntries(path.join(root, 'cat-a', 'pkg-one'), pkgOne, hashes);
    const eclass = parse(await fs.readFile(path.join(root, 'eclass', 'Manifest'), 'utf8'));
    expect(summary(eclass)).toEqual(['DATA bar.eclass', 'DATA foo.eclass']);
    // profiles/ holds no packages: as on the mirror, its sub-folders have no Manifest of their own.
    await expect(fs.lstat(path.join(root, 'profiles', 'arch', 'Manifest'))).rejects.toThrow();
    const profiles = parse(await fs.readFile(path.join(root, 'profiles', 'Manifest'), 'utf8'));
    expect(summary(profiles)).toEqual(['DATA arch/amd64/make.defaults', 'DATA repo_name']);
    await checkEntries(path.join(root, 'profiles'), profiles, hashes);

    // Deterministic: the same tree gives the same bytes, compressed ones too.
    const before = await Promise.all(['Manifest', 'cat-a/Manifest', 'cat-a/pkg-one/Manifest'].map((p) => fs.readFile(path.join(root, p))));
    await writeManifests(root, opts);
    const after = await Promise.all(['Manifest', 'cat-a/Manifest', 'cat-a/pkg-one/Manifest'].map((p) => fs.readFile(path.join(root, p))));
    expect(after).toEqual(before);
    await writeManifests(root, { ignore: IGNORE, timestamp: opts.timestamp });
    const gz = await fs.readFile(path.join(root, 'cat-a', 'Manifest.gz'));
    await writeManifests(root, { ignore: IGNORE, timestamp: opts.timestamp });
    expect(await fs.readFile(path.join(root, 'cat-a', 'Manifest.gz'))).toEqual(gz);
    await expect(fs.lstat(path.join(root, 'cat-a', 'Manifest'))).rejects.toThrow();
  });

  it('writes extra lines as they are at the end of the Manifests named, and refuses a folder without one', async () => {
    const root = path.join(tmpdir('manifest-writer'), 'tree');
    await writeTree(root, { 'cat/pkg/a.ebuild': 'a\n' });
    await writeManifests(root, { compress: false, extra: { '': ['IGNORE local'], 'cat/pkg': ['IGNORE files'] } });
    expect((await fs.readFile(path.join(root, 'Manifest'), 'utf8')).endsWith('\nIGNORE local\n')).toBe(true);
    expect(await fs.readFile(path.join(root, 'cat/pkg/Manifest'), 'utf8')).toMatch(/^DATA a\.ebuild .*\nIGNORE files\n$/);
    const before = await fs.readFile(path.join(root, 'Manifest'));
    await expect(writeManifests(root, { extra: { 'cat/pkg/files': ['IGNORE x'] } })).rejects.toThrow(/no Manifest of its own in "cat\/pkg\/files"/);
    expect(await fs.readFile(path.join(root, 'Manifest'))).toEqual(before);
  });

  it('refuses what it cannot list faithfully: unknown hashes, special files, symlinks out of the tree or to folders', async () => {
    const dir = tmpdir('manifest-writer');
    const root = path.join(dir, 'tree');
    await writeTree(root, { 'cat/pkg/a.ebuild': 'a\n' });
    await fs.writeFile(path.join(dir, 'outside'), 'x\n');
    await expect(writeManifests(root, { hashes: ['WHIRLPOOL2'] })).rejects.toThrow(/unknown hash WHIRLPOOL2/);
    await expect(writeManifests(root, { ignore: ['../x'] })).rejects.toThrow(/not a relative path inside the tree/);
    for (const [spec, why] of [
      [{ 'cat/pkg/out.ebuild': { symlink: '../../../outside' } }, /points outside the tree/],
      [{ 'cat/pkg/dir': { symlink: '..' } }, /not a regular file/],
      [{ 'cat/pkg/dangling': { symlink: 'nowhere' } }, /does not resolve/],
    ] as const) {
      await writeTree(root, spec);
      await expect(writeManifests(root), JSON.stringify(spec)).rejects.toThrow(why);
      for (const p of Object.keys(spec)) await fs.rm(path.join(root, p));
    }
    execFileSync('mkfifo', [path.join(root, 'cat', 'pkg', 'fifo')]);
    await expect(writeManifests(root)).rejects.toThrow(/neither a file, a directory nor a symlink/);
  });
});

/** gemato on PATH, if any: installed by hand, never a dependency of reposnap. */
const gemato = (process.env.PATH ?? '')
  .split(path.delimiter)
  .filter((d) => d !== '')
  .map((d) => path.join(d, 'gemato'))
  .find((p) => {
    try {
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
if (!gemato) console.log('manifest-writer: gemato is not on PATH, so the trees are not cross-checked with it');

describe('writeManifests against gemato', () => {
  /** `gemato verify`, requiring a signature by a key of `pub` and fetching nothing. */
  const verify = (pub: string, root: string): { status: number | null; out: string } => {
    const r = spawnSync(gemato as string, ['verify', '--require-signed-manifest', '--no-refresh-keys', '--openpgp-key', pub, root], { encoding: 'utf8' });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };

  it.skipIf(!gemato)('gemato verify accepts the trees and refuses them once changed', async () => {
    const dir = tmpdir('manifest-gemato');
    const root = path.join(dir, 'tree');
    await writeTree(root, TREE);
    const key = makeSigningKey(dir, 'signer');
    await writeManifests(root, { key, ignore: IGNORE });
    let r = verify(key.pub, root);
    expect(r.status, r.out).toBe(0);

    // Other hashes and plain category Manifests are as valid.
    await writeManifests(root, { key, ignore: IGNORE, compress: false, hashes: ['SHA3_512', 'SHA256', 'BLAKE2B'] });
    r = verify(key.pub, root);
    expect(r.status, r.out).toBe(0);

    const ebuild = path.join(root, 'cat-a', 'pkg-one', 'pkg-one-1.ebuild');
    await fs.appendFile(ebuild, '# changed\n');
    r = verify(key.pub, root);
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toMatch(/pkg-one-1\.ebuild/);

    // Rewritten after the change, valid again; a file nothing lists is refused.
    await writeManifests(root, { key, ignore: IGNORE });
    expect(verify(key.pub, root).status).toBe(0);
    await fs.writeFile(path.join(root, 'eclass', 'unlisted.eclass'), '# nobody listed me\n');
    r = verify(key.pub, root);
    expect(r.status, r.out).not.toBe(0);
    expect(r.out).toMatch(/unlisted\.eclass/);
    await fs.rm(path.join(root, 'eclass', 'unlisted.eclass'));

    // Signed by a key that is not in the key file, or not signed: refused.
    const stranger = makeSigningKey(dir, 'stranger');
    await writeManifests(root, { key: stranger, ignore: IGNORE });
    expect(verify(key.pub, root).status).not.toBe(0);
    await writeManifests(root, { ignore: IGNORE });
    expect(verify(key.pub, root).status).not.toBe(0);
  });
});
