/**
 * Collecting old snapshots.
 *
 * Policy (Portage's, with the commit time taken from metadata): keep latest,
 * keep the sync-rcu-spare-snapshots newest others, keep every snapshot
 * committed less than sync-rcu-ttl-days ago, and (unlike Portage) keep every
 * snapshot a reader holds a lease on, whatever its age, and every pinned
 * one (`reposnap pin`); the rest goes.
 *
 * Deletion is made to look atomic to readers: the snapshot is moved out of
 * snapshots/ in one rename (into reposnap/trash/), and only then removed file
 * by file; a btrfs subvolume is deleted in one call, which takes it out of
 * the namespace at once; an overlay (overlayfs) is unmounted in one call,
 * which leaves an empty folder that then goes like any other. A reader
 * resolving paths sees the whole snapshot or none of it. Layers go after
 * the snapshots, when nothing uses them any more (layers.ts).
 * The caller holds the store lock.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { deleteSubvolume, isSubvolume } from '../util/btrfs.js';
import { fsyncDir, removeDeadTemporaries, removeTree } from '../util/fs.js';
import { isMountPoint, unmount } from '../util/mounts.js';
import { collectLayers } from './layers.js';
import type { StoreLayout } from './layout.js';
import { leaseHolders } from './leases.js';
import { FileLock } from '../lock/file-lock.js';
import { commitTime, listMetaIds, removeMeta } from './metadata.js';
import { isPinned } from './pins.js';
import { latestId, listSnapshotIds } from './snapshots.js';
import { collectStaleStaging, listStaging } from './staging.js';

export interface GcPolicy {
  spareSnapshots: number;
  ttlDays: number;
  now?: Date;
}

export type KeepReason = 'latest' | 'spare' | 'ttl' | 'leased' | 'pinned';

export interface GcDecision {
  id: number;
  committedAt: string | undefined;
  keep: boolean;
  reasons: KeepReason[];
  /** Pids of the readers holding a lease (empty when none, or not visible to us). */
  leasedBy: number[];
}

export interface GcResult {
  decisions: GcDecision[];
  removed: number[];
  /** Abandoned staging trees collected (stale base, or older than a day). */
  removedStaging: string[];
  /** overlayfs layers no snapshot or staging tree used any more. */
  removedLayers?: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Decide, without deleting, what collection would keep and why. */
export async function planCollection(layout: StoreLayout, policy: GcPolicy): Promise<GcDecision[]> {
  const now = (policy.now ?? new Date()).getTime();
  const ids = await listSnapshotIds(layout);
  const latest = await latestId(layout);
  let spares = policy.spareSnapshots;
  const decisions: GcDecision[] = [];
  for (const id of [...ids].reverse()) {
    const time = await commitTime(layout, id);
    const reasons: KeepReason[] = [];
    if (id === latest) reasons.push('latest');
    else if (spares > 0) {
      spares--;
      reasons.push('spare');
    }
    if (time && now - time.getTime() < policy.ttlDays * DAY_MS) reasons.push('ttl');
    const lease = await leaseHolders(layout, id);
    if (lease.leased) reasons.push('leased');
    if (await isPinned(layout, id)) reasons.push('pinned');
    decisions.push({ id, committedAt: time?.toISOString(), keep: reasons.length > 0, reasons, leasedBy: lease.pids });
  }
  return decisions.reverse();
}

/** Collect: delete what the plan does not keep, then tidy leftovers. */
export async function collect(layout: StoreLayout, policy: GcPolicy): Promise<GcResult> {
  const decisions = await planCollection(layout, policy);
  const removed: number[] = [];
  for (const d of decisions) {
    if (d.keep) continue;
    if (await removeSnapshot(layout, d.id)) removed.push(d.id);
    else {
      // A reader took a lease since the plan was made.
      d.keep = true;
      d.reasons.push('leased');
    }
  }
  await emptyTrash(layout);
  await dropOrphans(layout);
  await dropDeadTemporaries(layout);
  const removedStaging = await collectStaleStaging(layout, (await latestId(layout)) ?? null);
  const stagingLayers = (await listStaging(layout)).map((s) => s.info?.lower ?? []);
  const removedLayers = await collectLayers(layout, stagingLayers);
  return { decisions, removed, removedStaging, ...(removedLayers.length > 0 ? { removedLayers } : {}) };
}

/**
 * Delete snapshot `id` unless a reader leases it: exclusive lease lock, one
 * rename out of snapshots/, drop the lease file, unlock, then remove the
 * tree. Returns false when the snapshot is leased.
 */
export async function removeSnapshot(layout: StoreLayout, id: number): Promise<boolean> {
  await fs.mkdir(layout.leasesDir, { recursive: true, mode: 0o755 });
  const lock = await FileLock.tryAcquire(layout.lease(id), { operation: 'gc' });
  if (!lock) return false;
  const aside = `${layout.trashDir}/${id}-${randomBytes(3).toString('hex')}`;
  let movedAside = false;
  try {
    // An overlay leaves the namespace in one unmount (lazily if a reader
    // without a lease is in it: it keeps what it has open), leaving the
    // empty folder it was mounted on.
    if (await isMountPoint(layout.snapshot(id))) await unmount(layout.snapshot(id), { lazy: true });
    if (await isSubvolume(layout.snapshot(id))) {
      // A btrfs snapshot leaves the namespace at once when deleted (and a
      // read-only subvolume cannot be moved to another directory).
      await deleteSubvolume(layout.snapshot(id));
    } else {
      await fs.mkdir(layout.trashDir, { recursive: true, mode: 0o700 });
      try {
        await fs.rename(layout.snapshot(id), aside);
        movedAside = true;
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
      }
    }
    await fsyncDir(layout.snapshotsDir);
    await fs.rm(layout.lease(id), { force: true });
  } finally {
    await lock.release();
  }
  if (movedAside) await removeTree(aside);
  await removeMeta(layout, id);
  return true;
}

/** Finish deletions that an earlier, interrupted collection started. */
async function emptyTrash(layout: StoreLayout): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(layout.trashDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  for (const n of names) await removeTree(`${layout.trashDir}/${n}`);
}

/** Half-written files of killed writers (atomic writes not yet renamed). */
async function dropDeadTemporaries(layout: StoreLayout): Promise<void> {
  for (const dir of [layout.storeDir, layout.ownDir, layout.metaDir, layout.stagingDir, layout.leasesDir, layout.layersDir]) await removeDeadTemporaries(dir);
  await removeDeadTemporaries(path.dirname(layout.location), `.${path.basename(layout.location)}.reposnap-`);
}

/**
 * Metadata and lease files of snapshots that no longer exist (a commit or a
 * collection cut short, a reader that lost the race with collection).
 */
async function dropOrphans(layout: StoreLayout): Promise<void> {
  const present = new Set(await listSnapshotIds(layout));
  for (const id of await listMetaIds(layout)) {
    if (!present.has(id)) await removeMeta(layout, id);
  }
  let names: string[] = [];
  try {
    names = await fs.readdir(layout.leasesDir);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  for (const n of names) {
    const m = /^([1-9]\d*)\.lock$/.exec(n);
    if (!m || present.has(Number(m[1]))) continue;
    const file = `${layout.leasesDir}/${n}`;
    const lock = await FileLock.tryAcquire(file, { operation: 'gc' });
    if (!lock) continue;
    try {
      await fs.rm(file, { force: true });
    } finally {
      await lock.release();
    }
  }
}
