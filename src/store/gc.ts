/**
 * Collecting old snapshots.
 *
 * Policy (Portage's, with the commit time taken from metadata): keep latest,
 * keep the sync-rcu-spare-snapshots newest others, keep every snapshot
 * committed less than sync-rcu-ttl-days ago; the rest goes.
 *
 * Deletion is made to look atomic to readers: the snapshot is moved out of
 * snapshots/ in one rename (into reposnap/trash/), and only then removed file
 * by file. A reader resolving paths sees the whole snapshot or none of it.
 * The caller holds the store lock.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { fsyncDir, removeTree } from '../util/fs.js';
import type { StoreLayout } from './layout.js';
import { commitTime, listMetaIds } from './metadata.js';
import { latestId, listSnapshotIds } from './snapshots.js';

export interface GcPolicy {
  spareSnapshots: number;
  ttlDays: number;
  now?: Date;
}

export type KeepReason = 'latest' | 'spare' | 'ttl';

export interface GcDecision {
  id: number;
  committedAt: string | undefined;
  keep: boolean;
  reasons: KeepReason[];
}

export interface GcResult {
  decisions: GcDecision[];
  removed: number[];
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
    decisions.push({ id, committedAt: time?.toISOString(), keep: reasons.length > 0, reasons });
  }
  return decisions.reverse();
}

/** Collect: delete what the plan does not keep, then tidy leftovers. */
export async function collect(layout: StoreLayout, policy: GcPolicy): Promise<GcResult> {
  const decisions = await planCollection(layout, policy);
  const removed: number[] = [];
  for (const d of decisions) {
    if (d.keep) continue;
    await removeSnapshot(layout, d.id);
    removed.push(d.id);
  }
  await emptyTrash(layout);
  await dropOrphanMeta(layout);
  return { decisions, removed };
}

async function removeSnapshot(layout: StoreLayout, id: number): Promise<void> {
  await fs.mkdir(layout.trashDir, { recursive: true, mode: 0o700 });
  const aside = `${layout.trashDir}/${id}-${randomBytes(3).toString('hex')}`;
  try {
    await fs.rename(layout.snapshot(id), aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  await fsyncDir(layout.snapshotsDir);
  await removeTree(aside);
  await fs.rm(layout.meta(id), { force: true });
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

/** Metadata of snapshots that no longer exist (a commit or GC cut short). */
async function dropOrphanMeta(layout: StoreLayout): Promise<void> {
  const present = new Set(await listSnapshotIds(layout));
  for (const id of await listMetaIds(layout)) {
    if (!present.has(id)) await fs.rm(layout.meta(id), { force: true });
  }
}
