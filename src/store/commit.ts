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
 */
import fs from 'node:fs/promises';
import type { SnapshotBackend } from '../backends/backend.js';
import { failpoint } from '../util/failpoint.js';
import { atomicSymlink, atomicWriteFile, fsyncDir, lstatOrUndefined, syncFilesystem } from '../util/fs.js';
import type { StoreLayout } from './layout.js';
import { ensureLeaseFile } from './leases.js';
import { ensureLocationLink } from './location.js';
import { writeFolderIndex, writeMeta, type SnapshotMeta } from './metadata.js';
import { nextSnapshotId } from './snapshots.js';

export type MetaDraft = Omit<SnapshotMeta, 'id' | 'committedAt' | 'backend'>;

/** Publish `dir` as a new snapshot. The caller holds the store lock. */
export async function publishSnapshot(
  layout: StoreLayout,
  dir: string,
  backend: SnapshotBackend,
  draft: MetaDraft,
  opts: { fixLocation: boolean; folderIndex?: string },
): Promise<SnapshotMeta> {
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
  if (opts.folderIndex !== undefined) await writeFolderIndex(layout, id, opts.folderIndex);
  await writeMeta(layout, meta);
  await ensureLeaseFile(layout, id); // before anyone can resolve N
  await failpoint('sealed');
  await fs.rename(dir, layout.snapshot(id));
  await backend.freeze?.(layout.snapshot(id));
  await fsyncDir(layout.snapshotsDir);
  await failpoint('renamed');
  await pointLatestAt(layout, id);
  await atomicWriteFile(layout.lastIdFile, `${id}\n`);
  // A rollback (rollback.ts) is history once a new snapshot is current.
  await fs.rm(layout.rollbackRecord, { force: true });
  if (opts.fixLocation) await ensureLocationLink(layout);
  return meta;
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
