/**
 * MetaManifest (GLEP 74) verification through real syncs: trees written and
 * signed by the test kit's Manifest writer with keys made by gpg, fetched by
 * the local and rsync sources, verified in staging before anything is
 * visible. Every refusal must exit 1 with one line naming the file and what
 * failed, leave `latest` where it was, and keep the tree rejected for
 * inspection; configuration that cannot be honoured exits 2.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interruptAt, treeDigest } from '../torture/lib.js';
import { forgetKeys, makeSigningKey, writeManifests, type SigningKey } from '../bench/manifest-writer.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort, PORTAGE_SHIPPED_REPOS_CONF, rcuConf, readTree, runCli, sleep, stopChildren, tmpdir, waitForPort, writeConf, writeTree } from './helpers.js';

const procs: ChildProcess[] = [];
afterAll(async () => {
  forgetKeys();
  await stopChildren(procs);
});

const TREE = {
  'header.txt': 'top\n',
  'profiles/repo_name': 'test\n',
  'metadata/layout.conf': 'masters =\n',
  'app-misc/hello/hello-1.ebuild': 'EAPI=8\n',
  'app-misc/hello/metadata.xml': '<pkgmetadata/>\n',
  'app-misc/hello/files/fix build.patch': '--- a\n+++ b\n',
  'app-misc/world/world-2.ebuild': 'EAPI=8\nSLOT=0\n',
  'dev-libs/foo/foo-1.ebuild': 'EAPI=7\n',
  'dev-libs/foo/foo-2.ebuild': 'EAPI=8\n',
};

let dir: string;
let signer: SigningKey;
let stranger: SigningKey;
beforeAll(() => {
  dir = tmpdir('metamanifest');
  signer = makeSigningKey(dir, 'signer');
  stranger = makeSigningKey(dir, 'stranger');
});

/** A repo synced from its own upstream, with verification on. */
async function setup(tag: string, extra = ''): Promise<{ base: string; up: string; conf: string; sync: (...args: string[]) => ReturnType<typeof runCli> }> {
  const base = path.join(dir, tag);
  const up = path.join(base, 'upstream');
  await fs.mkdir(up, { recursive: true });
  await writeTree(up, TREE);
  await writeManifests(up, { key: signer });
  const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${signer.pub}\n${extra}`));
  return { base, up, conf, sync: (...args) => runCli(['-c', conf, 'sync', ...args]) };
}

async function latest(base: string): Promise<string> {
  return fs.readlink(path.join(base, 'store', 'latest'));
}

async function meta(base: string, id: number): Promise<{ verified?: { incremental: boolean; hashed: number; files: number; signedBy: string; timestamp: string } }> {
  return JSON.parse(await fs.readFile(path.join(base, 'store', 'reposnap', 'meta', `${id}.json`), 'utf8'));
}

/** A refusal: exit 1, one line with `why`, latest unchanged, the tree kept rejected. */
async function expectRefused(r: { code: number | null; stderr: string }, base: string, why: RegExp, before = 'snapshots/1'): Promise<void> {
  expect(r.stderr).toMatch(why);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/nothing was published, the previous snapshot stays current/);
  expect(r.code).toBe(1);
  expect(await latest(base)).toBe(before);
  const status = await runCli(['-c', path.join(base, 'repos.conf'), 'status', '--json']);
  expect(status.stdout).toMatch(/"rejected"/);
}

describe('sync-rsync-verify-metamanifest', () => {
  it('publishes a signed tree, records the verification, and verifies the next sync incrementally', async () => {
    const { base, up, sync } = await setup('good');
    const first = await sync('--json');
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout).results[0];
    expect(report.verified).toMatchObject({ incremental: false, signedBy: signer.fpr });
    expect((await meta(base, 1)).verified).toMatchObject({ incremental: false, signedBy: signer.fpr });
    // The folder index the next verification starts from, kept beside the metadata.
    const index = JSON.parse(await fs.readFile(path.join(base, 'store', 'reposnap', 'meta', '1.folders.json'), 'utf8'));
    expect(index.folders.map((f: [string]) => f[0])).toContain('app-misc');

    await writeTree(up, { 'dev-libs/foo/foo-3.ebuild': 'EAPI=8\n# new\n' });
    await fs.rm(path.join(up, 'dev-libs/foo/foo-1.ebuild'));
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    const second = await sync('--json');
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const v = JSON.parse(second.stdout).results[0].verified;
    expect(v.incremental).toBe(true);
    // The new ebuild, its Manifest and the Manifests above it; not the untouched app-misc files,
    // nor their folders, which the base's folder index stands for.
    expect(v.hashed).toBeLessThan(v.files);
    expect(v.foldersListed).toBeGreaterThan(0);
    expect(v.foldersListed).toBeLessThan(v.folders);
    expect(await latest(base)).toBe('snapshots/2');
    const tree = await readTree(path.join(base, 'repo'));
    expect(tree['dev-libs/foo/foo-3.ebuild']?.content).toBe('EAPI=8\n# new\n');
    expect(tree['dev-libs/foo/foo-1.ebuild']).toBeUndefined();

    const check = await runCli(['-c', path.join(base, 'repos.conf'), 'verify', 'test']);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/snapshot 2 verified \(quick\)/);
    const full = await runCli(['-c', path.join(base, 'repos.conf'), 'verify', 'test', '--full', '--json']);
    expect(full.code).toBe(0);
    expect((JSON.parse(full.stdout) as { results: unknown }).results).toMatchObject({ full: true, snapshot: 2 });
  });

  it("collection takes a snapshot's folder index with it", async () => {
    const { base, up, sync } = await setup('index-gc', 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0\n');
    const metaDir = path.join(base, 'store', 'reposnap', 'meta');
    expect((await sync()).code).toBe(0);
    await writeTree(up, { 'dev-libs/foo/foo-3.ebuild': 'EAPI=8\n' });
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    expect((await sync()).code).toBe(0);
    expect(await latest(base)).toBe('snapshots/2');
    expect((await fs.readdir(metaDir)).sort()).toEqual(['2.folders.json', '2.json']);
  });

  it.each([
    ['a changed file', async (up: string) => fs.appendFile(path.join(up, 'app-misc/hello/hello-1.ebuild'), 'evil\n'), /app-misc\/hello\/hello-1\.ebuild: (size|.*hash mismatch)/],
    ['a changed file of the same size', async (up: string) => fs.writeFile(path.join(up, 'dev-libs/foo/foo-2.ebuild'), 'EAPI=6\n'), /dev-libs\/foo\/foo-2\.ebuild: \w+ hash mismatch/],
    ['a missing file', async (up: string) => fs.rm(path.join(up, 'app-misc/world/world-2.ebuild')), /app-misc\/world\/world-2\.ebuild: missing/],
    ['a stray file', async (up: string) => fs.writeFile(path.join(up, 'app-misc/hello/evil.ebuild'), 'x\n'), /app-misc\/hello\/evil\.ebuild: stray file/],
    ['a stray top-level folder', async (up: string) => writeTree(up, { 'eclass/evil.eclass': 'x\n' }), /eclass\/evil\.eclass: stray file/],
    [
      'a changed sub-Manifest',
      async (up: string) => fs.writeFile(path.join(up, 'app-misc/hello/Manifest'), 'DATA hello-1.ebuild 7 SHA512 00\n'),
      /app-misc\/hello\/Manifest: (size|.*hash mismatch)/,
    ],
    [
      'a signed Manifest edited after signing',
      async (up: string) => {
        const m = path.join(up, 'Manifest');
        await fs.writeFile(m, (await fs.readFile(m, 'utf8')).replace(/^TIMESTAMP .*$/m, 'TIMESTAMP 2099-01-01T00:00:00Z'));
      },
      /Manifest: OpenPGP signature refused: the signature is bad/,
    ],
    ['an unsigned Manifest', async (up: string) => writeManifests(up, {}), /Manifest: OpenPGP signature refused: it is not OpenPGP-signed/],
    ['a Manifest signed by another key', async (up: string) => writeManifests(up, { key: stranger }), /Manifest: OpenPGP signature refused: it is not signed by a key from the key file/],
    ['no top-level Manifest', async (up: string) => fs.rm(path.join(up, 'Manifest')), /Manifest: missing/],
  ])('refuses %s, keeping the previous snapshot', async (_what, tamper, why) => {
    const { base, up, sync } = await setup(`bad-${_what.replace(/\W+/g, '-')}`);
    expect((await sync()).code).toBe(0);
    await writeTree(up, { 'dev-libs/foo/foo-9.ebuild': 'EAPI=8\n' });
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    await tamper(up);
    await expectRefused(await sync(), base, why);
    await expect(fs.stat(path.join(base, 'repo', 'dev-libs/foo/foo-9.ebuild'))).rejects.toThrow();
  });

  it('refuses a tree on the first sync too: nothing is ever published unverified', async () => {
    const { base, up, sync } = await setup('first');
    await fs.appendFile(path.join(up, 'header.txt'), 'changed\n');
    const r = await sync();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/header\.txt: (size|.*hash mismatch)/);
    await expect(fs.lstat(path.join(base, 'store', 'latest'))).rejects.toThrow();
  });

  it('refuses a TIMESTAMP older than sync-rsync-verify-max-age', async () => {
    const { base, up, sync } = await setup('max-age', 'sync-rsync-verify-max-age = 3\n');
    expect((await sync()).code).toBe(0);
    await writeTree(up, { 'dev-libs/foo/foo-9.ebuild': 'EAPI=8\n' });
    // Older than the limit, but newer than the current tree would need; signed properly.
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() - 5 * 86_400_000) });
    await expectRefused(await sync('--allow-older'), base, /Manifest: TIMESTAMP \S+ is 5 days old, more than sync-rsync-verify-max-age = 3/);
  });

  it('refuses a validly signed but older tree (a replay) unless --allow-older', async () => {
    const { base, up, sync } = await setup('replay');
    const old = path.join(base, 'old-upstream');
    await fs.cp(up, old, { recursive: true });
    expect((await sync()).code).toBe(0);
    await writeTree(up, { 'dev-libs/foo/foo-9.ebuild': 'EAPI=8\n# security fix\n' });
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 60_000) });
    expect((await sync()).code).toBe(0);
    expect(await latest(base)).toBe('snapshots/2');
    // The mirror serves the first tree again: signed, complete, and older.
    await fs.rm(up, { recursive: true });
    await fs.cp(old, up, { recursive: true });
    await expectRefused(await sync(), base, /refusing a tree older than the current one: its Manifest TIMESTAMP is \S+, the current snapshot's is \S+ .*--allow-older/, 'snapshots/2');
    const allowed = await sync('--allow-older');
    expect(allowed.stderr).toBe('');
    expect(allowed.code).toBe(0);
    await expect(fs.stat(path.join(base, 'repo', 'dev-libs/foo/foo-9.ebuild'))).rejects.toThrow();
  });

  it('verifies over rsync, and catches a snapshot tampered with after publication', async () => {
    const { base, conf } = await setup('rsync-and-tamper', '');
    const text = (await fs.readFile(conf, 'utf8')).replace('sync-type = local', 'sync-type = rsync');
    await fs.writeFile(conf, text);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Someone with root writes into the published snapshot.
    const victim = path.join(base, 'store', 'snapshots', '1', 'dev-libs/foo/foo-2.ebuild');
    await fs.chmod(victim, 0o644);
    await fs.writeFile(victim, 'EAPI=6\n');
    const quick = await runCli(['-c', conf, 'verify', 'test']);
    expect(quick.code).toBe(1);
    expect(quick.stderr).toMatch(/^reposnap: repo test: snapshot 1 fails verification: dev-libs\/foo\/foo-2\.ebuild: \w+ hash mismatch/);
    const full = await runCli(['-c', conf, 'verify', 'test', '--full']);
    expect(full.code).toBe(1);
  });

  it('a quick verify hashes only what changed since the clone made for the next sync, and catches a change after it', async () => {
    // Hardlinks: the clone prepared for the next sync links every file of
    // the snapshot again, which moves every file's ctime after the commit.
    const { base, conf, sync } = await setup('quick-after-prepared', 'sync-rcu-backend = hardlink\nsync-rcu-prepare-staging = yes\n');
    expect((await sync()).code).toBe(0);
    const status = JSON.parse((await runCli(['-c', conf, '--json', 'status', 'test'])).stdout).results.repos[0];
    expect(status.staging).toEqual([expect.objectContaining({ base: 1, prepared: true })]);
    const quick = await runCli(['-c', conf, '--json', 'verify', 'test']);
    expect(quick.code).toBe(0);
    const q = JSON.parse(quick.stdout).results;
    expect(q).toMatchObject({ full: false, snapshot: 1 });
    expect(q.files).toBeGreaterThan(5);
    expect(q.hashed).toBe(0);
    // The same size and time, other content: only the ctime tells.
    const victim = path.join(base, 'store', 'snapshots', '1', 'dev-libs/foo/foo-2.ebuild');
    const st = await fs.stat(victim);
    await fs.writeFile(victim, 'EAPI=6\n');
    await fs.utimes(victim, st.atime, st.mtime);
    const caught = await runCli(['-c', conf, 'verify', 'test']);
    expect(caught.code).toBe(1);
    expect(caught.stderr).toMatch(/^reposnap: repo test: snapshot 1 fails verification: dev-libs\/foo\/foo-2\.ebuild: \w+ hash mismatch/);
  });

  it('a quick verify takes no clone as its bound but one its own sync made after the commit', async () => {
    const { base, up, conf, sync } = await setup('quick-late-clone', 'sync-rcu-backend = hardlink\nsync-rcu-prepare-staging = no\n');
    expect((await sync()).code).toBe(0);
    // Changed after the commit, before any clone: a clone made later (by a
    // sync that then failed) must not hide it.
    const victim = path.join(base, 'store', 'snapshots', '1', 'dev-libs/foo/foo-2.ebuild');
    const st = await fs.stat(victim);
    await fs.writeFile(victim, 'EAPI=6\n');
    await fs.utimes(victim, st.atime, st.mtime);
    await new Promise((r) => setTimeout(r, 50));
    // A sync that clones staging and fails (a stray file upstream), keeping its staging.
    await writeTree(up, { 'dev-libs/foo/stray': 'x\n' });
    expect((await sync()).code).toBe(1);
    const staging = JSON.parse((await runCli(['-c', conf, '--json', 'status', 'test'])).stdout).results.repos[0].staging;
    expect(staging.length).toBeGreaterThan(0);
    const caught = await runCli(['-c', conf, 'verify', 'test']);
    expect(caught.code).toBe(1);
    expect(caught.stderr).toMatch(/dev-libs\/foo\/foo-2\.ebuild: \w+ hash mismatch/);
  });
});

describe('verification with interruptions and without a store', () => {
  it.each(['fill-midway', 'filled'])('a sync killed at %s resumes, verifies what the dead one wrote, and publishes exactly upstream', async (point) => {
    const { base, up, conf, sync } = await setup(`resume-${point}`);
    expect((await sync()).code).toBe(0);
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`dev-libs/pkg${i}/pkg${i}-1.ebuild`] = `EAPI=8\n# ${i}\n`;
    await writeTree(up, files);
    await fs.appendFile(path.join(up, 'app-misc/hello/metadata.xml'), '<!-- changed -->\n');
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    expect((await interruptAt(['-c', conf, 'sync'], point, 'SIGKILL')).reached).toBe(true);
    const r = await runCli(['-c', conf, 'sync', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).results[0]).toMatchObject({ resumed: true, verified: { incremental: true } });
    expect(await treeDigest(path.join(base, 'repo'))).toBe(await treeDigest(up));
  });

  it('a sync stopped during the fill lets go what the verification got ready: it ends, publishes nothing, leaves no keyring behind', async () => {
    const { base, up, conf, sync } = await setup('stopped-in-fill');
    expect((await sync()).code).toBe(0);
    await writeTree(up, { 'dev-libs/foo/foo-5.ebuild': 'EAPI=8\n' });
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    // Its hashing threads, the walk's thread and the keyring are there from the start of the fill.
    const temp = path.join(base, 'tmp');
    await fs.mkdir(temp);
    const r = await interruptAt(['-c', conf, 'sync'], 'fill-midway', 'SIGTERM', { env: { TMPDIR: temp } });
    expect(r.reached).toBe(true);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/abort/i);
    expect(await latest(base)).toBe('snapshots/1');
    expect(await fs.readdir(temp)).toEqual([]);
    // The next sync publishes, and lets go of its preparations after the commit: none is left behind either.
    const next = await runCli(['-c', conf, 'sync', '--json'], { env: { TMPDIR: temp } });
    expect(next.code).toBe(0);
    expect(JSON.parse(next.stdout).results[0]).toMatchObject({ resumed: true, verified: { incremental: true }, warnings: [] });
    expect(await fs.readdir(temp)).toEqual([]);
    expect(await treeDigest(path.join(base, 'repo'))).toBe(await treeDigest(up));
  });

  it('a file the dead sync wrote and someone changed before the resume is caught', async () => {
    const { base, up, conf, sync } = await setup('resume-tampered');
    expect((await sync()).code).toBe(0);
    const files: Record<string, string> = {};
    for (let i = 0; i < 40; i++) files[`dev-libs/pkg${i}/pkg${i}-1.ebuild`] = `EAPI=8\n# ${i}\n`;
    await writeTree(up, files);
    await writeManifests(up, { key: signer, timestamp: new Date(Date.now() + 1000) });
    expect((await interruptAt(['-c', conf, 'sync'], 'filled', 'SIGKILL')).reached).toBe(true);
    // The staging tree left behind is changed before the next sync takes it over.
    const staging = path.join(base, 'store', 'reposnap', 'staging');
    const tx = (await fs.readdir(staging)).find((n) => !n.includes('.')) as string;
    // Same size, same mtime: a fill that trusts size and mtime leaves it alone.
    const victim = path.join(staging, tx, 'dev-libs/pkg7/pkg7-1.ebuild');
    const st = await fs.stat(victim);
    await fs.writeFile(victim, 'EAPI=8\n# 9\n');
    await fs.utimes(victim, st.atime, st.mtime);
    const r = await sync();
    // Either the fill repaired it or verification refused it; never published as it is.
    if (r.code === 0) expect(await treeDigest(path.join(base, 'repo'))).toBe(await treeDigest(up));
    else {
      expect(r.stderr).toMatch(/dev-libs\/pkg7\/pkg7-1\.ebuild: \w+ hash mismatch/);
      expect(await latest(base)).toBe('snapshots/1');
    }
    expect(await fs.readFile(path.join(base, 'repo', 'dev-libs/pkg7/pkg7-1.ebuild'), 'utf8').catch(() => 'absent')).not.toBe('EAPI=8\n# 9\n');
  });

  it('a quarantine (sync-rcu = no) is verified before it is brought into place', async () => {
    const base = path.join(dir, 'quarantine');
    const up = path.join(base, 'upstream');
    await fs.mkdir(up, { recursive: true });
    await writeTree(up, TREE);
    await writeManifests(up, { key: signer });
    const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${signer.pub}\n`).replace('sync-rcu = yes', 'sync-rcu = no'));
    const first = await runCli(['-c', conf, 'sync']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    await fs.appendFile(path.join(up, 'header.txt'), 'evil\n');
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/header\.txt: (size|.*hash mismatch)/);
    expect(await fs.readFile(path.join(base, 'repo', 'header.txt'), 'utf8')).toBe('top\n');
  });
});

describe('verification keys that cannot be honoured are configuration errors', () => {
  it.each([
    ['a key file that does not exist', (b: string) => `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${b}/nope.asc\n`, /sync-openpgp-key-path: cannot read the key file/],
    ['no key file at all', () => 'sync-rsync-verify-metamanifest = yes\n', /sync-rsync-verify-metamanifest: needs sync-openpgp-key-path/],
    ['a key file holding no key', (b: string) => `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${b}/empty.asc\n`, /holds no OpenPGP key that can be used/],
    ['in-place mode', (b: string) => `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${b}/empty.asc\n`, /cannot verify in place/, 'inplace'],
  ])('%s', async (_what, extra, why, mode?: string) => {
    const base = path.join(dir, `conf-${_what.replace(/\W+/g, '-')}`);
    await fs.mkdir(path.join(base, 'upstream'), { recursive: true });
    await writeTree(path.join(base, 'upstream'), TREE);
    await fs.writeFile(path.join(base, 'empty.asc'), 'not a key\n');
    let text = rcuConf(base, extra(base));
    if (mode === 'inplace') text = text.replace('sync-rcu = yes', 'sync-rcu = no\nsync-allow-hardlinks = no');
    const conf = await writeConf(base, text);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toMatch(why);
    expect(r.stderr).toMatch(/repos\.conf:\d+/);
    expect(r.code).toBe(2);
  });

  it('git with sync-rsync-verify-metamanifest points to commit signatures', async () => {
    const base = path.join(dir, 'conf-git');
    await fs.mkdir(base, { recursive: true });
    const conf = await writeConf(base, rcuConf(base, `sync-rsync-verify-metamanifest = yes\nsync-openpgp-key-path = ${signer.pub}\n`, 'git', 'https://example.org/x.git'));
    const r = await runCli(['-c', conf, 'status']);
    expect(r.stderr).toMatch(/sync-rsync-verify-metamanifest: .*use sync-git-verify-commit-signature/);
    expect(r.code).toBe(2);
  });
});

describe('rollback protection without a MetaManifest: metadata/timestamp.chk, as Portage', () => {
  it('refuses an upstream whose timestamp.chk is older than the current tree\'s', async () => {
    const base = path.join(dir, 'timestamp-chk');
    const up = path.join(base, 'upstream');
    await fs.mkdir(up, { recursive: true });
    await writeTree(up, { 'a/b': '1\n', 'metadata/timestamp.chk': 'Mon, 23 Nov 2026 12:00:00 +0000\n' });
    const conf = await writeConf(base, rcuConf(base));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await writeTree(up, { 'a/b': '2\n', 'metadata/timestamp.chk': 'Sun, 22 Nov 2026 12:00:00 +0000\n' });
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toMatch(/refusing a tree older than the current one: its metadata\/timestamp\.chk is 2026-11-22T12:00:00Z, the current snapshot's is 2026-11-23T12:00:00Z/);
    expect(r.code).toBe(1);
    expect(await fs.readFile(path.join(base, 'repo', 'a/b'), 'utf8')).toBe('1\n');
    expect((await runCli(['-c', conf, 'sync', '--allow-older'])).code).toBe(0);
    expect(await fs.readFile(path.join(base, 'repo', 'a/b'), 'utf8')).toBe('2\n');
  });
});

describe("the handbook's [gentoo] section", () => {
  it('over an rsync daemon: verifies, refuses tampering and a rollback, never publishes an unverified tree', async () => {
    const base = path.join(dir, 'handbook');
    const up = path.join(base, 'upstream');
    const old = path.join(base, 'old');
    await fs.mkdir(up, { recursive: true });
    await writeTree(up, { ...TREE, 'metadata/timestamp.chk': 'Mon, 23 Nov 2026 12:00:00 +0000\n' });
    await writeManifests(up, { key: signer, ignore: ['distfiles', 'local', 'packages'] });
    await fs.cp(up, old, { recursive: true });
    const port = await freePort();
    const rsyncd = await writeConf(base, `pid file = ${base}/rsyncd.pid\nuse chroot = no\n[gentoo-portage]\npath = ${up}\nread only = yes\n`, 'rsyncd.conf');
    procs.push(spawn('rsync', ['--daemon', '--no-detach', '--address=127.0.0.1', `--port=${port}`, `--config=${rsyncd}`], { stdio: 'ignore' }));
    await waitForPort(port);
    // Portage's shipped [gentoo] section, word for word but for the paths,
    // the mirror and the store (what moving to reposnap adds).
    const conf = await writeConf(
      base,
      `${PORTAGE_SHIPPED_REPOS_CONF.replace('%(EPREFIX)s/var/db/repos/gentoo', `${base}/repo`)
        .replace('rsync://rsync.gentoo.org/gentoo-portage', `rsync://127.0.0.1:${port}/gentoo-portage`)
        .replace('%(EPREFIX)s/usr/share/openpgp-keys/gentoo-release.asc', signer.pub)}sync-rcu = yes\nsync-rcu-store-dir = ${base}/store\n`,
    );
    const first = await runCli(['-c', conf, 'sync']);
    expect(first.stderr.split('\n').filter((l) => l.startsWith('reposnap: repo'))).toEqual([]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/verified in full/);
    // Key refresh and the webrsync key are not done here, and say so.
    expect(first.stderr).toMatch(/sync-openpgp-keyserver: not done/);
    expect(first.stderr).toMatch(/sync-webrsync-verify-signature: ignored/);

    // A new tree, a second later as a mirror's next one is (rsync's quick
    // check compares whole-second mtimes: a top-level Manifest of the same
    // size written in the same second would look unchanged to it), then a
    // tampered one: refused.
    await sleep(1100);
    await writeTree(up, { 'dev-libs/foo/foo-9.ebuild': 'EAPI=8\n', 'metadata/timestamp.chk': 'Mon, 23 Nov 2026 13:00:00 +0000\n' });
    await writeManifests(up, { key: signer, ignore: ['distfiles', 'local', 'packages'], timestamp: new Date(Date.now() + 2000) });
    const second = await runCli(['-c', conf, 'sync']);
    expect(second.stderr.split('\n').filter((l) => l.startsWith('reposnap: repo'))).toEqual([]);
    expect(second.code).toBe(0);
    expect(await latest(base)).toBe('snapshots/2');
    await fs.writeFile(path.join(up, 'dev-libs/foo/foo-9.ebuild'), 'EAPI=8\nevil\n');
    const tampered = await runCli(['-c', conf, 'sync']);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/repo gentoo: MetaManifest verification failed: dev-libs\/foo\/foo-9\.ebuild: size mismatch/);

    // The mirror replays the first tree: validly signed, older. Refused.
    // With its own times, as a mirror's rsync keeps them: copied anew, a
    // file of the same size could take the same second as the one it
    // replaces, and rsync's quick check would leave that one in place.
    await fs.rm(up, { recursive: true });
    await fs.cp(old, up, { recursive: true, preserveTimestamps: true });
    const replay = await runCli(['-c', conf, 'sync']);
    // With the signal and stderr, should it ever end otherwise.
    expect({ code: replay.code, signal: replay.signal, stderr: replay.stderr }).toMatchObject({ code: 1, signal: null });
    expect(replay.stderr).toMatch(/refusing a tree older than the current one/);
    expect(await latest(base)).toBe('snapshots/2');
    expect(await fs.readFile(path.join(base, 'repo', 'dev-libs/foo/foo-9.ebuild'), 'utf8')).toBe('EAPI=8\n');
  });
});
