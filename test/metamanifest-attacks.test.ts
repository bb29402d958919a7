/**
 * Attacks on incremental verification by a mirror that holds no key but
 * chooses what each sync gets: what it plants in one verified snapshot must
 * not make the next verification take attacker content for the base's
 * verified content. Each case builds two signed trees (T1 older, T2 newer),
 * a base snapshot that passed verification, and a staging tree as a fill
 * leaves it; a full verification refuses the staging tree, and so must the
 * incremental one.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, makeSigningKey, writeManifests, type SigningKey } from '../bench/manifest-writer.js';
import { verifyMetaManifest } from '../src/trust/metamanifest.js';
import { Keyring } from '../src/trust/openpgp.js';
import type { FolderIndex } from '../src/trust/tree-walk.js';
import { sleep, tmpdir, writeTree } from './helpers.js';

let dir: string;
let key: SigningKey;
let ring: Keyring;
beforeAll(async () => {
  dir = tmpdir('mm-attacks');
  key = makeSigningKey(dir, 'signer');
  ring = await Keyring.open('t', { file: key.pub, position: { file: 'x', line: 0 } });
});
afterAll(async () => {
  await ring.close();
  forgetKeys();
});

const verifyOnce = (root: string, base?: { root: string; clonedAt: number; folders?: FolderIndex }, onFolders?: (i: FolderIndex) => void) =>
  verifyMetaManifest({ repo: 't', root, keyring: ring, jobs: 1, maxAgeDays: 0, ...(base ? { base } : {}), ...(onFolders ? { onFolders } : {}) });

/**
 * Verify `root`; against a base, incrementally both ways (listing every
 * folder, and with the base's folder index as its verification left it),
 * which must agree.
 */
async function verify(root: string, base?: { root: string; clonedAt: number }): Promise<unknown> {
  if (!base) return verifyOnce(root);
  let folders: FolderIndex | undefined;
  await verifyOnce(base.root, undefined, (i) => (folders = i)).catch(() => undefined);
  const listing = await verifyOnce(root, base).then(
    () => 'passed',
    (err: Error) => err.message,
  );
  const indexed = await verifyOnce(root, { ...base, ...(folders ? { folders } : {}) }).then(
    () => 'passed',
    (err: Error) => err.message,
  );
  expect(indexed).toBe(listing);
  if (indexed !== 'passed') throw new Error(indexed);
  return indexed;
}

/** A hardlink clone of `base`, then `files` of `from` renamed in, as a fill writes them. */
async function fill(base: string, staging: string, from: string, files: string[]): Promise<number> {
  execFileSync('cp', ['-al', base, staging]);
  const clonedAt = Date.now();
  await sleep(60);
  for (const f of files) {
    await fs.mkdir(path.dirname(path.join(staging, f)), { recursive: true });
    await fs.copyFile(path.join(from, f), path.join(staging, `${f}.new`));
    await fs.rename(path.join(staging, `${f}.new`), path.join(staging, f));
  }
  return clonedAt;
}

describe('incremental verification against a base the mirror shaped', () => {
  it('a line planted after the signature of the base Manifest is not read as a base line', async () => {
    const t = path.join(dir, 'planted');
    await writeTree(path.join(t, 'T1'), { 'cat/pkg/pkg-1.ebuild': 'vulnerable\n', 'other/file': 'v1\n' });
    await writeManifests(path.join(t, 'T1'), { key, timestamp: new Date('2026-11-01T00:00:00Z') });
    await writeTree(path.join(t, 'T2'), { 'cat/pkg/pkg-1.ebuild': 'fixed!!!!!\n', 'other/file': 'v2\n' });
    await writeManifests(path.join(t, 'T2'), { key, timestamp: new Date('2026-11-20T00:00:00Z') });
    // Sync N gets T1, its top-level Manifest carrying T2's line for cat/
    // where gpg does not look (after the checksum, the armor line with a tab).
    const base = path.join(t, 'base');
    execFileSync('cp', ['-a', path.join(t, 'T1'), base]);
    const t2line = (await fs.readFile(path.join(t, 'T2', 'Manifest'), 'utf8')).split('\n').find((l) => l.startsWith('MANIFEST cat/')) as string;
    const lines = (await fs.readFile(path.join(base, 'Manifest'), 'utf8')).split('\n');
    lines[lines.indexOf('-----BEGIN PGP SIGNATURE-----')] += '\t';
    lines.splice(lines.findIndex((l) => l.startsWith('=')) + 1, 0, t2line);
    await fs.writeFile(path.join(base, 'Manifest'), lines.join('\n'));
    await verify(base); // gpg passes over it; what is read of the file is still only the signed text
    // Sync N+1: T2 everywhere but cat/, which stays at T1.
    const staging = path.join(t, 'staging');
    const clonedAt = await fill(base, staging, path.join(t, 'T2'), ['Manifest', 'other/Manifest.gz', 'other/file']);
    await expect(verify(staging)).rejects.toThrow(/cat\/Manifest\.gz: (size|\w+ hash) mismatch/);
    await expect(verify(staging, { root: base, clonedAt })).rejects.toThrow(/cat\/Manifest\.gz: (size|\w+ hash) mismatch/);
  });

  it('text between a Manifest and its signature that gpg does not check is refused', async () => {
    const t = path.join(dir, 'inside');
    await writeTree(t, { 'a/b': '1\n' });
    await writeManifests(t, { key });
    const m = path.join(t, 'Manifest');
    const text = await fs.readFile(m, 'utf8');
    // A line the armor parser skips, but that a reader of the file's text would take as an entry.
    await fs.writeFile(m, text.replace('-----BEGIN PGP SIGNATURE-----', '-----BEGIN PGP SIGNATURE----- \nDATA evil 1 SHA512 00'));
    await expect(verify(t)).rejects.toThrow(/Manifest: OpenPGP signature refused/);
  });

  it("a sub-Manifest planted in the base's ignored folder does not stand for the base when upstream starts covering it", async () => {
    const t = path.join(dir, 'ignored');
    await writeTree(path.join(t, 'T1'), { 'other/file': 'v1\n' });
    await writeManifests(path.join(t, 'T1'), { key, ignore: ['local'], timestamp: new Date('2026-11-01T00:00:00Z') });
    await writeTree(path.join(t, 'T2'), { 'other/file': 'v2\n', 'local/tool.sh': 'legit tool\n' });
    await writeManifests(path.join(t, 'T2'), { key, timestamp: new Date('2026-11-20T00:00:00Z') });
    // Sync N: T1, and in its ignored local/ a copy of T2's local Manifest beside a trojan.
    const base = path.join(t, 'base');
    execFileSync('cp', ['-a', path.join(t, 'T1'), base]);
    await fs.mkdir(path.join(base, 'local'));
    await fs.copyFile(path.join(t, 'T2', 'local', 'Manifest.gz'), path.join(base, 'local', 'Manifest.gz'));
    await fs.writeFile(path.join(base, 'local', 'tool.sh'), 'rm -rf / # trojan\n');
    await verify(base);
    // Sync N+1: T2 everywhere but local/tool.sh.
    const staging = path.join(t, 'staging');
    const clonedAt = await fill(base, staging, path.join(t, 'T2'), ['Manifest', 'other/Manifest.gz', 'other/file']);
    await expect(verify(staging)).rejects.toThrow(/local\/tool\.sh: size mismatch/);
    await expect(verify(staging, { root: base, clonedAt })).rejects.toThrow(/local\/tool\.sh: size mismatch/);
  });

  it('a file listed as a sub-Manifest that is huge is refused before it is read', async () => {
    const t = path.join(dir, 'huge');
    await writeTree(t, { 'a/b': '1\n' });
    await writeManifests(t, { key });
    // 600 MiB, sparse: reading it would take that much memory.
    const fh = await fs.open(path.join(t, 'a', 'Manifest.gz'), 'w');
    await fh.truncate(600 * 1024 * 1024);
    await fh.close();
    await expect(verify(t)).rejects.toThrow(/a\/Manifest\.gz: size mismatch: 629145600 bytes/);
  });

  it('an entry naming a dot file, first on the tree path or further down, is refused: such names are never part of the tree', async () => {
    for (const [folder, dotted, shown, manifest] of [
      ['', '.hidden', '.hidden', 'Manifest'],
      ['cat', 'pkg/.git/config', 'cat/pkg/.git/config', 'cat/Manifest'],
    ] as const) {
      const t = path.join(dir, `dotted-${folder || 'top'}`);
      await writeTree(t, { 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n' });
      const line = `DATA ${dotted} 3 BLAKE2B ${'0'.repeat(128)} SHA512 ${'0'.repeat(128)}`;
      await writeManifests(t, { key, compress: false, extra: { [folder]: [line] } });
      const quoted = (text: string): string => text.replace(/[./()]/g, '\\$&');
      await expect(verify(t)).rejects.toThrow(new RegExp(`^${quoted(shown)}: ${quoted(manifest)}:\\d+ lists a name starting with "\\." \\(never part of the tree\\)$`));
    }
  });
});
