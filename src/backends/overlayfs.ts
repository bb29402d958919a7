/**
 * overlayfs backend: a snapshot is a read-only overlay mount of a stack of
 * layers; staging is a writable overlay whose lower layers are the current
 * snapshot's and whose upper layer is new. The source writes into the
 * merged tree; the kernel copies a file up into the upper layer before its
 * first change (content or attributes) and records a deletion as a
 * whiteout, so nothing reaches a lower layer. At commit the upper layer
 * becomes the new snapshot's own layer, on top of its base's stack.
 * Opening staging is one mount whatever the tree's size; readers see a
 * plain read-only folder at snapshots/<N>.
 *
 * Which layers a snapshot has, bringing mounts back after a reboot,
 * flattening deep stacks and collecting layers are the store's
 * (store/layers.ts). `clone` and `createEmpty` make plain trees, the
 * bottom layers: the first snapshot, a migrated location, and the first
 * overlay snapshot of a store another backend filled (one link per file,
 * as the hardlink backend).
 *
 * Needs root (mounting), overlayfs in the kernel, a store filesystem that
 * can be an upper layer (ext4, xfs, btrfs...: whiteouts and trusted
 * extended attributes), and the system's mount namespace: a mount made in
 * a private one (a sandboxed service) is seen by nobody else.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { removeTree } from '../util/fs.js';
import { isRoot } from '../util/identity.js';
import { mountOverlay, privateNamespace, unmount } from '../util/mounts.js';
import { tempName } from '../util/temp-name.js';
import { cloneTree } from '../tree/clone.js';
import type { LayerMounts, SnapshotBackend } from './backend.js';

const layers: LayerMounts = {
  mountWritable(at, lower, upper, work) {
    return mountOverlay(at, { lower, upper: { dir: upper, work }, cwd: commonParent([...lower, upper, work]) });
  },
  mountReadOnly(at, stack) {
    return mountOverlay(at, { lower: stack, cwd: commonParent(stack) });
  },
  unmount,
};

/** The folder the mount runs in: the parent of the first layer, from which the others are named. */
function commonParent(dirs: string[]): string {
  return path.dirname(dirs[0] as string);
}

export const overlayfsBackend: SnapshotBackend = {
  name: 'overlayfs',
  // What `clone` makes: a plain tree linked to the one it came from. A
  // staging overlay shares nothing (copy-up gives every change a new inode);
  // the store says which it made (Staging.sharesInodes).
  sharesInodes: true,
  layers,

  async probe(storeDir) {
    if (!isRoot) return 'it needs root to mount overlays';
    const hidden = await privateNamespace(storeDir);
    if (hidden !== undefined) return hidden;
    return probeOverlay(storeDir);
  },

  clone(from, to, onEntry) {
    return cloneTree(from, to, { method: 'link', ...(onEntry ? { onEntry } : {}) });
  },

  async createEmpty(to) {
    await fs.mkdir(to, { mode: 0o755 });
  },
};

/**
 * Mount a writable overlay in the store, delete a lower file through it and
 * add one, then mount the result read-only: true when the upper layer got
 * a whiteout and the read-only stack shows the change, else why not.
 */
async function probeOverlay(storeDir: string): Promise<true | string> {
  const dir = tempName(path.join(storeDir, 'backend'), 'probe');
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => path.join(dir, n)) as [string, string, string, string];
  try {
    for (const d of [dir, lower, upper, work, merged]) await fs.mkdir(d, { mode: 0o700 });
    await fs.writeFile(path.join(lower, 'gone'), 'x');
    await layers.mountWritable(merged, [lower], upper, work);
    try {
      await fs.rm(path.join(merged, 'gone'));
      await fs.writeFile(path.join(merged, 'new'), 'y');
    } finally {
      await unmount(merged);
    }
    const whiteout = await fs.lstat(path.join(upper, 'gone'));
    if (!whiteout.isCharacterDevice() || whiteout.rdev !== 0) return `overlayfs on this filesystem writes no whiteouts reposnap can read`;
    await layers.mountReadOnly(merged, [upper, lower]);
    try {
      const names = await fs.readdir(merged);
      if (names.join() !== 'new') return `a read-only overlay here shows ${names.join(', ')} instead of new`;
    } finally {
      await unmount(merged);
    }
    return true;
  } catch (err) {
    return `overlayfs does not work there: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await removeTree(dir).catch(() => undefined);
  }
}
