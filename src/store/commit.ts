/**
 * Publishing a staging tree as the next snapshot.
 *
 * Order matters for crash safety; every step is a rename, and what a step
 * depends on is durable before the step:
 *
 *   1. give the tree's top folder the commit time as its mtime, then seal:
 *      make the staging tree durable (syncfs);
 *   2. under the store lock, pick N (never reused);
 *   3. write reposnap/meta/N.json (atomic), and N.folders.json where
 *      verification left a folder index;
 *   4. rename staging/<tx> -> snapshots/N (btrfs: then make it read-only),
 *      fsync snapshots/;
 *   5. point latest.new at snapshots/N, rename it over latest, fsync the store;
 *   6. record N in reposnap/last-id;
 *   7. make the location a symlink to <store>/latest if it is not.
 *
 * A kill at any point leaves `latest` at either the old or the new snapshot,
 * both complete. Dying between 4 and 5 leaves a complete, unpublished
 * snapshot N that collection treats like any older snapshot.
 *
 * With overlayfs (a backend with layers), step 1 first unmounts the staging
 * overlay (refused while anything still has a file open in it: nothing may
 * write into a layer once it is published), and step 4 is: rename the
 * tree's layer (the staging's upper layer, or a plain staging tree, which
 * becomes a bottom layer) to reposnap/layers/N, make the folder
 * snapshots/N and mount N's stack on it read-only; the stack is in
 * meta/N.json, written at step 3. snapshots/N is empty for the moment
 * between its mkdir and its mount, which no reader can reach (latest does
 * not point at it yet); a kill then leaves it to be mounted by the next
 * command (layers.ts restoreMounts), or collected.
 */
import fs from 'node:fs/promises';
import type { SnapshotBackend } from '../backends/backend.js';
import { failpoint } from '../util/failpoint.js';
import { ReposnapError } from '../errors.js';
import { atomicSymlink, atomicWriteFile, fsyncDir, lstatOrUndefined, removeTree, syncFilesystem } from '../util/fs.js';
import type { StoreLayout } from './layout.js';
import { ensureLeaseFile } from './leases.js';
import { mountSnapshot } from './layers.js';
import { ensureLocationLink } from './location.js';
import { writeFolderIndex, writeMeta, type SnapshotMeta } from './metadata.js';
import { nextSnapshotId } from './snapshots.js';

export type MetaDraft = Omit<SnapshotMeta, 'id' | 'committedAt' | 'backend'>;

/**
 * How a snapshot is published: whether to make the location the store's
 * link, the folder index verification left, and (overlayfs) which overlay
 * the staging tree is.
 */
export interface PublishOptions {
  fixLocation: boolean;
  folderIndex?: string;
  overlay?: StagedOverlay;
}

/** A staging overlay being published: its lower layers, upper layer and work folder. */
export interface StagedOverlay {
  lower: string[];
  upper: string;
  work: string;
}

/**
 * Publish `dir` as a new snapshot. The caller holds the store lock. With
 * overlayfs, `overlay` says which overlay `dir` is (none: `dir` is a plain
 * tree, published as a bottom layer).
 */
export async function publishSnapshot(
  layout: StoreLayout,
  dir: string,
  backend: SnapshotBackend,
  draft: MetaDraft,
  opts: PublishOptions,
): Promise<SnapshotMeta> {
  if (backend.layers) return publishLayered(layout, dir, backend, draft, opts);
  // Portage's collection ages a snapshot by its folder's mtime, and a fill
  // copies upstream's (rsync -a: days old) onto it: without this, an
  // `emerge --sync` on the same store deletes a snapshot made seconds ago.
  // Our own collection reads the commit time from the metadata, and no
  // comparison counts folder times, so this costs nothing else.
  const committedAt = new Date();
  await fs.utimes(dir, committedAt, committedAt);
  await syncFilesystem(dir);
  await fs.mkdir(layout.snapshotsDir, { recursive: true, mode: 0o755 });
  const id = await nextSnapshotId(layout);
  const meta: SnapshotMeta = { id, committedAt: committedAt.toISOString(), backend: backend.name, ...draft };
  await recordSnapshot(layout, meta, opts);
  await fs.rename(dir, layout.snapshot(id));
  await backend.freeze?.(layout.snapshot(id));
  await fsyncDir(layout.snapshotsDir);
  await failpoint('renamed');
  await makeCurrent(layout, id, opts);
  return meta;
}

async function publishLayered(
  layout: StoreLayout,
  dir: string,
  backend: SnapshotBackend,
  draft: MetaDraft,
  opts: PublishOptions,
): Promise<SnapshotMeta> {
  const committedAt = new Date();
  await fs.utimes(dir, committedAt, committedAt);
  const overlay = opts.overlay;
  if (overlay) {
    // Not lazily: a process still writing through the mount would write
    // into a published layer.
    try {
      await backend.layers?.unmount(dir);
    } catch (err) {
      throw new ReposnapError('ESTORE', `cannot commit: something still uses the staging tree ${dir} (${err instanceof Error ? err.message : String(err)})`);
    }
    await removeTree(overlay.work);
  }
  const layerTree = overlay ? overlay.upper : dir;
  await syncFilesystem(layout.storeDir);
  await fs.mkdir(layout.snapshotsDir, { recursive: true, mode: 0o755 });
  await fs.mkdir(layout.layersDir, { recursive: true, mode: 0o755 });
  const id = await nextSnapshotId(layout);
  const layers = [String(id), ...(overlay?.lower ?? [])];
  const meta: SnapshotMeta = { id, committedAt: committedAt.toISOString(), backend: backend.name, ...draft, layers };
  await recordSnapshot(layout, meta, opts);
  await fs.rename(layerTree, layout.layer(String(id)));
  await fsyncDir(layout.layersDir);
  if (overlay) await fs.rmdir(dir); // the staging mount's folder
  await fs.mkdir(layout.snapshot(id), { mode: 0o755 });
  try {
    await mountSnapshot(layout, id, layers);
  } catch (err) {
    // Not published; its layer and metadata go at the next collection.
    await fs.rmdir(layout.snapshot(id)).catch(() => undefined);
    throw err;
  }
  await fsyncDir(layout.snapshotsDir);
  await failpoint('renamed');
  await makeCurrent(layout, id, opts);
  return meta;
}

/**
 * Everything about snapshot `meta.id` but its tree, written before the tree
 * is renamed into place: its folder index, its metadata, and its lease
 * file (before anyone can resolve the id).
 */
async function recordSnapshot(layout: StoreLayout, meta: SnapshotMeta, opts: PublishOptions): Promise<void> {
  if (opts.folderIndex !== undefined) await writeFolderIndex(layout, meta.id, opts.folderIndex);
  await writeMeta(layout, meta);
  await ensureLeaseFile(layout, meta.id);
  await failpoint('sealed');
}

/** Point `latest` (and, asked to, the location) at published snapshot `id`, the one publish step readers see. */
async function makeCurrent(layout: StoreLayout, id: number, opts: PublishOptions): Promise<void> {
  await pointLatestAt(layout, id);
  await atomicWriteFile(layout.lastIdFile, `${id}\n`);
  // A rollback (rollback.ts) is history once a new snapshot is current.
  await fs.rm(layout.rollbackRecord, { force: true });
  if (opts.fixLocation) await ensureLocationLink(layout);
}

/** Atomically make `latest` point at snapshot `id`. */
export async function pointLatestAt(layout: StoreLayout, id: number): Promise<void> {
  // Something (Portage's pre-sync, a user) may have made an empty directory
  // where the symlink belongs; rename cannot replace a directory.
  const st = await lstatOrUndefined(layout.latest);
  if (st?.isDirectory()) await fs.rmdir(layout.latest);
  await atomicSymlink(layout.latestTarget(id), layout.latest);
  await fsyncDir(layout.storeDir);
}
