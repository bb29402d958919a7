/**
 * Rolling back: making an older kept snapshot current again, atomically, as
 * a commit publishes a new one (a new `latest` symlink renamed over the old).
 * Nothing is deleted: the snapshot rolled back from stays until collection
 * takes it like any other non-current snapshot (pin it to keep it). The
 * next sync starts from the snapshot now current, so it brings upstream
 * back; until then reposnap/rollback.json says what was done, for status
 * (the commit removes it).
 * The caller holds the sync lock (no update runs) and the store lock.
 */
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { atomicWriteFile } from '../util/fs.js';
import { pointLatestAt } from './commit.js';
import type { StoreLayout } from './layout.js';
import { ensureLocationLink } from './location.js';
import { keptBefore, keptSnapshot, latestId, listSnapshotIds } from './snapshots.js';

export interface RollbackRecord {
  from: number;
  to: number;
  at: string;
}

/** Make snapshot `to` (default: the newest kept one older than the current) current. */
export async function rollBack(layout: StoreLayout, repo: string, to?: number): Promise<RollbackRecord> {
  const current = await latestId(layout);
  if (current === undefined) throw new ReposnapError('ESTORE', `repo ${repo} has no snapshot yet`);
  const kept = await listSnapshotIds(layout);
  const target = to !== undefined ? keptSnapshot(repo, kept, to) : keptBefore(kept, current);
  if (target === undefined) throw new ReposnapError('EUSAGE', `repo ${repo} keeps no snapshot older than the current one (${current}) to roll back to`);
  if (target === current) throw new ReposnapError('EUSAGE', `snapshot ${target} of repo ${repo} is already the current one`);
  // Every folder in snapshots/ got there whole, by one rename (reposnap's or
  // Portage's), so any kept one can be made current.
  const record: RollbackRecord = { from: current, to: target, at: new Date().toISOString() };
  await atomicWriteFile(layout.rollbackRecord, `${JSON.stringify(record)}\n`);
  await pointLatestAt(layout, target);
  await ensureLocationLink(layout);
  return record;
}

/** The last rollback, while no commit has come since. */
export async function readRollback(layout: StoreLayout): Promise<RollbackRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(layout.rollbackRecord, 'utf8')) as RollbackRecord;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}
