/**
 * Snapshot backends on real filesystems: the store's behaviour (publish,
 * immutability, collection, leases, crashes, revert) on every backend each
 * filesystem supports, the automatic choice, explicit choices that cannot
 * work, and stores that mix backends. btrfs and xfs (reflink=1) images are
 * loop-mounted as root; elsewhere those cases are skipped with the reason.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { readMeta } from '../src/store/metadata.js';
import { mountImage, overlayUnavailable, type Mounted } from './fs-images.js';
import { readTree, runCli, sleep, startCli, tmpdir, wholeVersion, writeConf, writeTree, writeVersionedTree } from './helpers.js';

const BIG = 'x'.repeat(16 * 1024); // larger than btrfs inline extents, so sharing shows

function confFor(root: string, backend: string, extra = ''): string {
  return `[test]
location = ${root}/repo
sync-type = local
sync-uri = ${root}/upstream
sync-rcu = yes
sync-rcu-store-dir = ${root}/store
sync-rcu-backend = ${backend}
${extra}
`;
}

function sharedExtents(file: string): boolean {
  return /shared/.test(execFileSync('filefrag', ['-v', file], { encoding: 'utf8' }));
}

/** The store battery, run on one filesystem with one backend. */
async function battery(base: string, backend: string): Promise<void> {
  const root = await fs.mkdtemp(path.join(base, `${backend}-`));
  const up = path.join(root, 'upstream');
  await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'big/blob': BIG, 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n', link: { symlink: 'cat/pkg' } });
  const conf = await writeConf(root, confFor(root, backend, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0'));
  const repo = Repos.load({ path: conf }).get('test');
  const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));

  // Publish, record the backend, show it in status.
  const r1 = await repo.sync();
  expect(r1.snapshot?.id).toBe(1);
  expect(r1.backend).toBe(backend);
  expect((await readMeta(layout, 1))?.backend).toBe(backend);
  expect((await repo.status()).backend).toBe(backend);
  expect(await readTree(`${root}/repo/`)).toEqual(await readTree(up));

  // A change: new snapshot, old one untouched, unchanged content shared the
  // way the backend shares it.
  await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2 changed\n');
  const lease = await repo.lease(); // keep snapshot 1 through collection
  const r2 = await repo.sync();
  expect(r2.snapshot?.id).toBe(2);
  expect(await readTree(layout.snapshot(2))).toEqual(await readTree(up));
  expect(await fs.readFile(path.join(layout.snapshot(1), 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
  const [a, b] = await Promise.all([fs.stat(path.join(layout.snapshot(1), 'big/blob')), fs.stat(path.join(layout.snapshot(2), 'big/blob'))]);
  if (backend === 'hardlink') expect(b.ino).toBe(a.ino);
  else expect(b.ino === a.ino && a.dev === b.dev).toBe(false);
  if (backend === 'overlayfs') {
    // A read-only overlay of its layers: the change is in its own layer, the rest read from snapshot 1's.
    expect((await readMeta(layout, 2))?.layers).toEqual(['2', '1']);
    await expect(fs.writeFile(path.join(layout.snapshot(2), 'x'), 'x')).rejects.toThrow(/EROFS/);
  }
  if (backend === 'reflink' || backend === 'btrfs') expect(sharedExtents(path.join(layout.snapshot(2), 'big/blob'))).toBe(true);
  if (backend === 'btrfs') {
    expect((await fs.stat(layout.snapshot(2))).ino).toBe(256); // a subvolume
    expect(execFileSync('btrfs', ['property', 'get', layout.snapshot(2), 'ro'], { encoding: 'utf8' }).trim()).toBe('ro=true');
    await expect(fs.writeFile(path.join(layout.snapshot(2), 'x'), 'x')).rejects.toThrow(/EROFS/);
  }
  expect(await fs.readdir(layout.snapshotsDir).then((n) => n.sort())).toEqual(['1', '2']); // leased
  await lease.release();
  await repo.gc();
  expect(await fs.readdir(layout.snapshotsDir)).toEqual(['2']); // collected with the right method
  expect(await fs.readdir(layout.trashDir).catch(() => [])).toEqual([]);

  // kill -9 at a few instants: the location stays whole, the next sync completes.
  await writeVersionedTree(path.join(up, 'v'), 300, 'w0');
  expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
  for (let i = 1; i <= 4; i++) {
    await writeVersionedTree(path.join(up, 'v'), 300, `w${i}`);
    const run = startCli(['-c', conf, 'sync']);
    await sleep(40 * i);
    run.child.kill('SIGKILL');
    await run.done;
    expect(await wholeVersion(path.join(root, 'repo', 'v'), 300).catch(() => 'torn')).toMatch(/^w\d$/);
  }
  expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
  expect(await wholeVersion(path.join(root, 'repo', 'v'), 300)).toBe('w4');

  // Revert removes the store whatever its trees are made of.
  const rv = await runCli(['-c', conf, 'revert', 'test']);
  expect(rv.stderr).toBe('');
  expect(rv.code).toBe(0);
  expect((await fs.lstat(path.join(root, 'repo'))).isDirectory()).toBe(true);
  await expect(fs.lstat(path.join(root, 'store'))).rejects.toThrow();
}

describe('backends on the test machine\'s own filesystem', () => {
  for (const backend of ['hardlink', 'copy']) {
    it(`store battery: ${backend}`, async () => {
      await battery(tmpdir(), backend);
    });
  }
});

for (const kind of ['btrfs', 'xfs', 'ext4'] as const) {
  describe(`backends on ${kind}`, () => {
    let mounted: Mounted | string = 'not mounted yet';
    beforeAll(() => {
      mounted = (kind === 'ext4' ? overlayUnavailable() : undefined) ?? mountImage(kind);
      if (typeof mounted === 'string') console.log(`skipping ${kind} backend tests: ${mounted}`);
    });
    afterAll(() => {
      if (typeof mounted !== 'string') mounted.unmount();
    });
    // ext4: the filesystem overlayfs is for (hardlink and copy run on the test machine's own).
    const backends = kind === 'btrfs' ? ['btrfs', 'reflink', 'hardlink', 'copy'] : kind === 'xfs' ? ['reflink', 'hardlink', 'copy'] : ['overlayfs'];
    for (const backend of backends) {
      it(`store battery: ${backend}`, async (ctx) => {
        if (typeof mounted === 'string') return ctx.skip();
        await battery(mounted.dir, backend);
      });
    }

    const auto = kind === 'btrfs' ? 'btrfs' : kind === 'xfs' ? 'reflink' : 'hardlink';
    it(`auto picks ${auto}`, async (ctx) => {
      if (typeof mounted === 'string') return ctx.skip();
      const root = await fs.mkdtemp(path.join(mounted.dir, 'auto-'));
      await writeTree(path.join(root, 'upstream'), { f: 'x\n' });
      const repo = Repos.fromText(confFor(root, 'auto'), path.join(root, 'r.conf')).get('test');
      expect((await repo.sync()).backend).toBe(auto);
    });

    if (kind === 'btrfs') {
      it('a store mixing backends keeps working (hardlink -> btrfs -> hardlink)', async (ctx) => {
        if (typeof mounted === 'string') return ctx.skip();
        const root = await fs.mkdtemp(path.join(mounted.dir, 'mixed-'));
        const up = path.join(root, 'upstream');
        await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'big/blob': BIG });
        const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));
        const sync = async (backend: string, stamp: string) => {
          await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), `${stamp}\n`);
          const repo = Repos.fromText(confFor(root, backend, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0'), path.join(root, 'r.conf')).get('test');
          const r = await repo.sync();
          expect(await readTree(layout.snapshot(r.snapshot?.id as number))).toEqual(await readTree(up));
          return r;
        };
        await sync('hardlink', 'A');
        const b = await sync('btrfs', 'B-from-a-plain-directory');
        expect((await fs.stat(layout.snapshot(b.snapshot?.id as number))).ino).toBe(256);
        // Hardlinks cannot cross into a subvolume: EXDEV falls back to reflinks.
        const c = await sync('hardlink', 'C-from-a-subvolume');
        expect(c.snapshot?.id).toBe(3);
        expect(sharedExtents(path.join(layout.snapshot(3), 'big/blob'))).toBe(true);
        await sync('hardlink', 'D'); // collects the read-only subvolume 2
        expect(await fs.readdir(layout.snapshotsDir).then((n) => n.sort())).toEqual(['3', '4']);
      });

      it('prepared staging is a writable snapshot the next sync writes into', async (ctx) => {
        if (typeof mounted === 'string') return ctx.skip();
        const root = await fs.mkdtemp(path.join(mounted.dir, 'prepared-'));
        const up = path.join(root, 'upstream');
        await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'a/b/c': 'c\n' });
        const repo = Repos.fromText(confFor(root, 'btrfs', 'sync-rcu-prepare-staging = yes'), path.join(root, 'r.conf')).get('test');
        await repo.sync();
        const st = await repo.status();
        expect(st.staging).toEqual([expect.objectContaining({ base: 1, locked: false })]);
        const staged = path.join(root, 'store', 'reposnap', 'staging', st.staging[0]?.tx as string);
        expect((await fs.stat(staged)).ino).toBe(256); // a subvolume, not a copied tree
        await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
        const r = await repo.sync();
        expect(r).toMatchObject({ prepared: true, resumed: false });
        expect(await readTree(path.join(root, 'repo'))).toEqual(await readTree(up));
        expect(await fs.readFile(path.join(root, 'store', 'snapshots', '1', 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
      });
    }

    if (kind === 'xfs') {
      it('an explicit backend that cannot work fails clearly', async (ctx) => {
        if (typeof mounted === 'string') return ctx.skip();
        const root = await fs.mkdtemp(path.join(mounted.dir, 'wrong-'));
        await writeTree(path.join(root, 'upstream'), { f: 'x\n' });
        const conf = await writeConf(root, confFor(root, 'btrfs'));
        const r = await runCli(['-c', conf, 'sync']);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/sync-rcu-backend = btrfs does not work for the store .* \(it needs the store on btrfs/);
      });
    }
  });
}

describe('explicit reflink on a filesystem that cannot clone', () => {
  it('fails clearly (or works, where the test directory can clone)', async () => {
    const root = tmpdir();
    await writeTree(path.join(root, 'upstream'), { f: 'x\n' });
    const conf = await writeConf(root, confFor(root, 'reflink'));
    const r = await runCli(['-c', conf, 'sync']);
    if (r.code === 0) return; // this machine's temporary directory supports reflinks
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sync-rcu-backend = reflink does not work for the store .* \(its filesystem cannot clone files/);
  });
});
