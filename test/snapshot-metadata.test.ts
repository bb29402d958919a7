/**
 * A published snapshot never changes, metadata included. For the rsync and
 * local sources on every backend, an upstream change of nothing but a
 * file's mode, owner or time, or a symlink's owner or time, gives a new
 * snapshot that equals upstream, and leaves every older snapshot's entries
 * exactly as they were: the same inode, content, mode, owner and time. (Not
 * the ctime: linking a file into the next clone changes its inode's ctime,
 * which is the price of hardlinked snapshots, and no reader's concern.)
 *
 * With hardlinks the new snapshot's unchanged files are the old ones'
 * inodes, so this is what fails if a fill sets an attribute in place
 * (rsync does, for an entry whose content is unchanged). With overlayfs the
 * fill writes through an overlay onto the older snapshots' layers, and
 * copy-up must keep every change (attributes included) out of them. btrfs,
 * xfs (reflink) and ext4 (overlayfs) run on loop-mounted images as root,
 * skipped elsewhere with the reason printed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { mountImage, overlayUnavailable, type Mounted } from './fs-images.js';
import { isRoot, tmpdir, writeConf, writeTree } from './helpers.js';

const NOBODY = 65534;
const OLD = new Date('2020-01-02T03:04:05.678Z');

interface EntryState {
  type: string;
  ino: bigint;
  mode: bigint;
  uid: bigint;
  gid: bigint;
  mtimeNs: bigint;
  content?: string;
}

/** Every entry of a tree, with what an in-place change would alter. */
async function record(root: string, skipTop: string[] = []): Promise<Record<string, EntryState>> {
  const out: Record<string, EntryState> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).sort()) {
      if (rel === '' && skipTop.includes(name)) continue;
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(p, { bigint: true });
      const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
      out[r] = { type, ino: st.ino, mode: st.mode, uid: st.uid, gid: st.gid, mtimeNs: st.mtimeNs };
      if (type === 'file') out[r].content = await fs.readFile(p, 'utf8');
      if (type === 'symlink') out[r].content = await fs.readlink(p);
      if (type === 'dir') await walk(p, r);
    }
  };
  await walk(root, '');
  return out;
}

/** What must equal upstream: type, content or target, mode, owner. */
function visible(tree: Record<string, EntryState>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(tree).map(([k, e]) => [k, { type: e.type, content: e.content, mode: e.mode, uid: e.uid, gid: e.gid }]));
}

/**
 * Entries whose time is not upstream's: files to within a millisecond (the
 * local source sets times through utimes(), which takes them as a double
 * and may land a few hundred nanoseconds off), symlinks to the second
 * (rsync compares and sets a symlink's time only to the second).
 */
function otherTimes(tree: Record<string, EntryState>, up: Record<string, EntryState>): string[] {
  return Object.keys(up).filter((k) => {
    const u = up[k] as EntryState;
    const t = tree[k];
    if (u.type === 'dir') return false;
    if (t === undefined) return true;
    return u.type === 'symlink' ? t.mtimeNs / 1_000_000_000n !== u.mtimeNs / 1_000_000_000n : Math.abs(Number(t.mtimeNs - u.mtimeNs)) >= 1_000_000;
  });
}

/** The changes of metadata only, one per sync. */
const CHANGES: Array<{ name: string; apply(up: string): Promise<void>; rootOnly?: boolean }> = [
  { name: "a file's mode", apply: (up) => fs.chmod(path.join(up, 'cat/pkg/pkg-1.ebuild'), 0o600) },
  { name: "a file's owner", apply: (up) => fs.chown(path.join(up, 'cat/pkg/Manifest'), NOBODY, NOBODY), rootOnly: true },
  { name: "a file's time", apply: (up) => fs.utimes(path.join(up, 'metadata/layout.conf'), OLD, OLD) },
  { name: "a symlink's owner", apply: (up) => fs.lchown(path.join(up, 'link'), NOBODY, NOBODY), rootOnly: true },
  { name: "a symlink's time", apply: (up) => fs.lutimes(path.join(up, 'link'), OLD, OLD) },
  { name: "an executable's mode", apply: (up) => fs.chmod(path.join(up, 'scripts/run.sh'), 0o644) },
];

async function upstreamTree(up: string): Promise<void> {
  await writeTree(up, {
    'metadata/layout.conf': 'masters = gentoo\n',
    'metadata/timestamp.chk': 'T1\n',
    'cat/pkg/pkg-1.ebuild': 'EAPI=8\n',
    'cat/pkg/Manifest': 'DIST pkg-1.tar.gz 1 BLAKE2B 00\n',
    'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    link: { symlink: 'cat/pkg' },
  });
}

/** Sync once per change, checking after each that no older snapshot moved and the newest equals upstream. */
async function everyChange(base: string, backend: string, type: 'rsync' | 'local'): Promise<void> {
  const root = await fs.mkdtemp(path.join(base, `${type}-${backend}-`));
  const up = path.join(root, 'upstream');
  await upstreamTree(up);
  const conf = await writeConf(
    root,
    `[test]
location = ${root}/repo
sync-type = ${type}
sync-uri = ${up}
sync-rcu = yes
sync-rcu-store-dir = ${root}/store
sync-rcu-backend = ${backend}
sync-rcu-spare-snapshots = 20
sync-rcu-ttl-days = 365
`,
  );
  const repo = Repos.load({ path: conf }).get('test');
  const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));
  const first = await repo.sync();
  expect(first.backend).toBe(backend);
  const kept: Array<{ id: number; state: Record<string, EntryState> }> = [{ id: 1, state: await record(layout.snapshot(1)) }];
  for (const change of CHANGES) {
    if (change.rootOnly && !isRoot) continue;
    await change.apply(up);
    const r = await repo.sync();
    expect(r.outcome, `${change.name}: a new snapshot`).toBe('updated');
    const id = r.snapshot?.id as number;
    const now = await record(layout.snapshot(id));
    const upstream = await record(up);
    expect(visible(now), `${change.name}: the new snapshot equals upstream`).toEqual(visible(upstream));
    expect(otherTimes(now, upstream), `${change.name}: the new snapshot has upstream's times`).toEqual([]);
    for (const old of kept) {
      expect(await record(layout.snapshot(old.id)), `${change.name}: snapshot ${old.id} is exactly as it was published`).toEqual(old.state);
    }
    kept.push({ id, state: now });
  }
}

const TYPES = ['rsync', 'local'] as const;

describe('metadata-only changes upstream never reach an older snapshot', () => {
  let base: string;
  beforeAll(() => {
    base = tmpdir('reposnap-metadata');
  });
  for (const backend of ['hardlink', 'copy']) {
    for (const type of TYPES) {
      it(`${type} source, ${backend} backend`, () => everyChange(base, backend, type), 60_000);
    }
  }
});

for (const [kind, backends] of [
  ['xfs', ['reflink']],
  ['btrfs', ['btrfs', 'hardlink']],
  ['ext4', ['overlayfs']],
] as const) {
  describe(`metadata-only changes on ${kind}`, () => {
    let mounted: Mounted | string;
    beforeAll(() => {
      mounted = (kind === 'ext4' ? overlayUnavailable() : undefined) ?? mountImage(kind);
      if (typeof mounted === 'string') console.log(`skipping the ${kind} cases: ${mounted}`);
    });
    afterAll(() => {
      if (typeof mounted !== 'string') mounted.unmount();
    });
    for (const backend of backends) {
      for (const type of TYPES) {
        it(`${type} source, ${backend} backend`, async () => {
          if (typeof mounted === 'string') return;
          await everyChange(mounted.dir, backend, type);
        }, 60_000);
      }
    }
  });
}

describe('quarantine mode (a hardlinked copy of the location)', () => {
  it('a rejected update whose only change is a mode leaves the location untouched', async () => {
    const root = tmpdir('reposnap-metadata-quarantine');
    const up = path.join(root, 'upstream');
    await upstreamTree(up);
    const conf = await writeConf(
      root,
      `[test]
location = ${root}/repo
sync-type = rsync
sync-uri = ${up}
sync-rcu = no
sync-verify-command = test ! -e ${root}/refuse
`,
    );
    const repo = Repos.load({ path: conf }).get('test');
    await repo.sync();
    // The quarantine itself is inside the location, kept for inspection when refused.
    const skip = ['.tmp-unverified-download-quarantine'];
    const before = await record(path.join(root, 'repo'), skip);
    await fs.chmod(path.join(up, 'cat/pkg/pkg-1.ebuild'), 0o600);
    await fs.writeFile(path.join(root, 'refuse'), '');
    await expect(repo.sync()).rejects.toThrow(/verify/);
    expect(await record(path.join(root, 'repo'), skip)).toEqual(before);
  }, 60_000);
});
