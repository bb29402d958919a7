/**
 * The top-level Manifest's signature checked while the fill runs: gpg's
 * answer is taken only for the very bytes the verification reads once the
 * fill is over, so checking ahead changes when gpg runs, never what the
 * verification answers. Real trees signed by keys made with gpg, real
 * gpg, and a real sync whose fill announces the Manifest.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetKeys, makeSigningKey, writeManifests, type SigningKey } from '../bench/manifest-writer.js';
import { verifyMetaManifest } from '../src/trust/metamanifest.js';
import { Keyring, type CleartextVerdict } from '../src/trust/openpgp.js';
import { SignatureAhead } from '../src/trust/signature-ahead.js';
import { rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

const TREE: Record<string, string> = {
  'profiles/repo_name': 'test\n',
  'metadata/layout.conf': 'masters =\n',
  'app-misc/hello/hello-1.ebuild': 'EAPI=8\n',
  'dev-libs/foo/foo-1.ebuild': 'EAPI=7\n',
};

let dir: string;
let signer: SigningKey;
let stranger: SigningKey;
let ring: Keyring;
beforeAll(async () => {
  dir = tmpdir('signature-ahead');
  signer = makeSigningKey(dir, 'signer');
  stranger = makeSigningKey(dir, 'stranger');
  ring = await Keyring.open('t', { file: signer.pub, position: { file: 'x', line: 0 } });
});
afterAll(async () => {
  await ring.close();
  forgetKeys();
});

let trees = 0;
/** A tree signed by `key`. */
async function signedTree(key: SigningKey): Promise<string> {
  const root = path.join(dir, `tree-${trees++}`);
  await writeTree(root, TREE);
  await writeManifests(root, { key });
  return root;
}

/** A keyring that counts its cleartext checks. */
function counted(): { keyring: Keyring; checks: () => number } {
  let n = 0;
  const keyring = Object.create(ring) as Keyring;
  keyring.verifyCleartextBytes = (repo: string, bytes: Buffer): Promise<CleartextVerdict> => {
    n++;
    return ring.verifyCleartextBytes(repo, bytes);
  };
  return { keyring, checks: () => n };
}

/** The top-level Manifest of `root` offered to a check ahead on `keyring`, and that check settled. */
async function checkedAhead(root: string, keyring: () => Promise<Keyring>, paths = ['Manifest']): Promise<SignatureAhead> {
  const ahead = new SignatureAhead('t', root, keyring);
  ahead.offer(paths);
  await ahead.settle();
  return ahead;
}

/** The verification of `root`, taking what `ahead` checked. */
function verify(root: string, keyring: Keyring, ahead: SignatureAhead): ReturnType<typeof verifyMetaManifest> {
  return verifyMetaManifest({ repo: 't', root, keyring, jobs: 1, maxAgeDays: 0, signatureAhead: ahead });
}

describe('the signature checked ahead', () => {
  it('is taken for the same bytes: the verification runs no gpg of its own', async () => {
    const root = await signedTree(signer);
    const { keyring, checks } = counted();
    const ahead = new SignatureAhead('t', root, async () => keyring);
    ahead.offer(['profiles/repo_name', 'Manifest']);
    expect(checks()).toBe(0); // the keyring comes after a turn of the event loop
    await ahead.settle();
    expect(checks()).toBe(1);
    const r = await verify(root, keyring, ahead);
    expect(r.signedBy).toBe(signer.fpr);
    expect(checks()).toBe(1);
  });

  it('a Manifest written again after it was checked is checked as it is now: a good signature ahead does not cover a forged one', async () => {
    const root = await signedTree(signer);
    const { keyring, checks } = counted();
    const ahead = await checkedAhead(root, async () => keyring);
    // Then the fill writes a Manifest signed by a key not in the key file, unannounced.
    const forged = await signedTree(stranger);
    await fs.copyFile(path.join(forged, 'Manifest'), path.join(root, 'Manifest'));
    await expect(verify(root, keyring, ahead)).rejects.toThrow(/Manifest: OpenPGP signature refused: it is not signed by a key from the key file/);
    expect(checks()).toBe(2);
  });

  it('a refusal ahead stands for the same bytes', async () => {
    const root = await signedTree(stranger);
    const { keyring, checks } = counted();
    const ahead = await checkedAhead(root, async () => keyring);
    await expect(verify(root, keyring, ahead)).rejects.toThrow(/not signed by a key from the key file/);
    expect(checks()).toBe(1);
  });

  it('a check that could not run is not an answer: the verification checks itself', async () => {
    const root = await signedTree(signer);
    const { keyring, checks } = counted();
    const ahead = await checkedAhead(root, () => Promise.reject(new Error('no keyring')));
    const r = await verify(root, keyring, ahead);
    expect(r.signedBy).toBe(signer.fpr);
    expect(checks()).toBe(1);
  });

  it('nothing is checked for paths other than the top-level Manifest, nor for a Manifest that is not a regular file', async () => {
    const root = await signedTree(signer);
    const { keyring, checks } = counted();
    const ahead = await checkedAhead(root, async () => keyring, ['app-misc/Manifest', 'metadata/Manifest']);
    expect(checks()).toBe(0);
    const top = path.join(root, 'Manifest');
    await fs.rename(top, `${top}.real`);
    await fs.symlink('Manifest.real', top);
    ahead.offer(['Manifest']);
    await ahead.settle();
    expect(checks()).toBe(0);
    expect(ahead.take(await fs.readFile(top))).toBeUndefined();
  });

  it('in a sync: the fill announces the Manifest, and the verification after it takes that check', async () => {
    const base = path.join(dir, 'sync');
    const up = path.join(base, 'upstream');
    await writeTree(up, TREE);
    await writeManifests(up, { key: signer });
    const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${signer.pub}\n`));
    const r = await runCli(['-c', conf, 'sync', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).results[0].verified.signedBy).toBe(signer.fpr);
    // And a forged top-level Manifest upstream is refused, checked ahead or not.
    const forged = await signedTree(stranger);
    await fs.copyFile(path.join(forged, 'Manifest'), path.join(up, 'Manifest'));
    const bad = await runCli(['-c', conf, 'sync']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not signed by a key from the key file/);
  });
});
