/**
 * The verification got ready while the fill runs (src/sync/verification-prep.ts):
 * the key file read once, so that the digest recorded and the keys imported
 * are the same bytes; what fails kept for the verification to report; the
 * choice between an incremental and a full verification; everything let go
 * on close.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetaManifestConfig } from '../src/config/repos.js';
import type { VerificationRecord } from '../src/store/metadata.js';
import type { Update } from '../src/store/storage.js';
import { VerificationPrep } from '../src/sync/verification-prep.js';
import { forgetKeys, makeSigningKey, tmpdir, writeManifests, writeTree, type SigningKey } from './helpers.js';

let dir: string;
let signer: SigningKey;
let stranger: SigningKey;
let tree: string;
beforeAll(async () => {
  dir = tmpdir('verification-prep');
  signer = makeSigningKey(dir, 'signer');
  stranger = makeSigningKey(dir, 'stranger');
  tree = path.join(dir, 'tree');
  await writeTree(tree, { 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n' });
  await writeManifests(tree, { key: signer });
});
afterAll(forgetKeys);

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');
const config = (file: string): MetaManifestConfig => ({ key: { file, position: { file: 'repos.conf', line: 3 } }, jobs: 2, maxAgeDays: 0 });
const update = (baseTree?: Update['baseTree']): Update => ({ target: tree, excludeTop: [], baseTree }) as unknown as Update;
const verifiedWith = (keyDigest: string): VerificationRecord => ({ method: 'metamanifest', keyDigest }) as VerificationRecord;

describe('the verification got ready during the fill', () => {
  it('imports the very key bytes it digested, whatever the key file becomes meanwhile', async () => {
    const keyFile = path.join(dir, 'key-swapped.asc');
    await fs.copyFile(signer.pub, keyFile);
    const prep = await VerificationPrep.start('t', config(keyFile), update(), false);
    try {
      await fs.copyFile(stranger.pub, keyFile);
      expect(await prep.keyDigest()).toBe(sha256(signer.pub));
      const verdict = await (await prep.keyring()).verifyCleartext('t', path.join(tree, 'Manifest'));
      expect(verdict).toMatchObject({ ok: true, fingerprint: signer.fpr });
    } finally {
      await prep.close();
    }
  });

  it('keeps what failed for the verification to report, and lets everything go on close', async () => {
    const temp = tmpdir('verification-prep-tmp');
    const before = process.env.TMPDIR;
    process.env.TMPDIR = temp;
    try {
      const gone = await VerificationPrep.start('t', config(path.join(dir, 'no-such-key.asc')), update(), false);
      await expect(gone.keyDigest()).rejects.toThrow(/ENOENT/);
      await expect(gone.keyring()).rejects.toThrow(/ENOENT/);
      await gone.close();

      const notAKey = path.join(dir, 'not-a-key.asc');
      await fs.writeFile(notAKey, 'not a key\n');
      const useless = await VerificationPrep.start('t', config(notAKey), update(), false);
      await expect(useless.keyring()).rejects.toThrow(/holds no OpenPGP key that can be used/);
      await useless.close();

      const good = await VerificationPrep.start('t', config(signer.pub), update(), false);
      await good.keyring();
      expect((await fs.readdir(temp)).filter((n) => n.startsWith('reposnap-gpg-'))).toHaveLength(1);
      await good.close();
      // Each keyring's home is removed, used or not, failed or not.
      expect(await fs.readdir(temp)).toEqual([]);
    } finally {
      process.env.TMPDIR = before;
    }
  });

  it('is incremental only from a base verified with the very same key file, and never for a tree another user wrote', async () => {
    const base = (keyDigest: string): Update['baseTree'] => ({ dir: tree, clonedAt: 1, verified: verifiedWith(keyDigest), folderIndex: () => Promise.resolve(undefined) });
    const cases: Array<[string, Update['baseTree'], boolean, boolean]> = [
      ['same key', base(sha256(signer.pub)), false, true],
      ['another key', base(sha256(stranger.pub)), false, false],
      ['another user writes the tree', base(sha256(signer.pub)), true, false],
      ['no base', undefined, false, false],
      ['a base not cloned at a known time', { ...base(sha256(signer.pub)), clonedAt: undefined } as Update['baseTree'], false, false],
    ];
    for (const [what, baseTree, untrusted, incremental] of cases) {
      const prep = await VerificationPrep.start('t', config(signer.pub), update(baseTree), untrusted);
      try {
        expect(await prep.base, what).toEqual(incremental ? { root: tree, clonedAt: 1 } : undefined);
        expect(prep.readAhead !== undefined, what).toBe(incremental);
        expect(prep.walkHelper !== undefined, what).toBe(incremental);
      } finally {
        await prep.close();
      }
    }
  });
});
