/**
 * Reading the published state of a store: which snapshots exist, which one is
 * latest, and the next id to assign.
 */
import type { Dirent } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { lstatOrUndefined, readlinkOrUndefined } from '../util/fs.js';
import { MAX_SNAPSHOT_ID, parseLatestTarget, parseSnapshotId, type StoreLayout } from './layout.js';

/**
 * Snapshot ids present in snapshots/, ascending: folders named by an id.
 * Other names, and anything that is not a folder (a stray file named "7"
 * would otherwise count as a snapshot and take a spare slot), are ignored.
 */
export async function listSnapshotIds(layout: StoreLayout): Promise<number[]> {
  let entries: Dirent[];
  try {
    entries = await fs.readdir(layout.snapshotsDir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => parseSnapshotId(e.name))
    .filter((n): n is number => n !== undefined)
    .sort((a, b) => a - b);
}

/** `id`, if it is among the `kept` snapshots; else a usage error naming those that are. */
export function keptSnapshot(repo: string, kept: readonly number[], id: number): number {
  if (!kept.includes(id)) throw new ReposnapError('EUSAGE', `repo ${repo} has no snapshot ${id} (kept: ${kept.join(', ') || 'none'})`);
  return id;
}

/** The newest of the `kept` snapshots older than `id`. */
export function keptBefore(kept: readonly number[], id: number): number | undefined {
  return kept.filter((k) => k < id).pop();
}

/**
 * The id `latest` points at, if it points at a snapshot directory that
 * exists; undefined for a missing, dangling or foreign `latest`.
 */
export async function latestId(layout: StoreLayout): Promise<number | undefined> {
  const target = await readlinkOrUndefined(layout.latest);
  if (target === undefined) return undefined;
  const id = parseLatestTarget(target);
  if (id === undefined) return undefined;
  const st = await lstatOrUndefined(layout.snapshot(id));
  return st?.isDirectory() ? id : undefined;
}

/**
 * The next snapshot id: above every id in snapshots/, every metadata record
 * and the last id ever assigned, so ids are never reused even after the
 * newest snapshot was collected or a commit was interrupted.
 */
export async function nextSnapshotId(layout: StoreLayout): Promise<number> {
  // One look at each folder gives both the ids and any names past the bound.
  const snapshots = await scanIds(layout.snapshotsDir, /^(\d+)$/, (e) => e.isDirectory());
  const metas = await scanIds(layout.metaDir, /^(\d+)\.json$/);
  let max = Math.max(0, ...snapshots.ids, ...metas.ids);
  let last: string | undefined;
  try {
    last = (await fs.readFile(layout.lastIdFile, 'utf8')).trim();
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const lastId = last === undefined ? undefined : parseSnapshotId(last);
  if (lastId !== undefined) max = Math.max(max, lastId);
  // An id past the bound is not ignored: ids must never be reused, and one
  // of them may be the highest ever assigned.
  const oversized = [
    ...(last !== undefined && lastId === undefined && /^\d+$/.test(last) ? [`reposnap/last-id says ${last}`] : []),
    ...snapshots.oversized.map((n) => `snapshots/${n}`),
    ...metas.oversized.map((n) => `reposnap/meta/${n}`),
  ];
  if (oversized.length > 0 || max + 1 > MAX_SNAPSHOT_ID) {
    throw new ReposnapError(
      'ESTORE',
      `store ${layout.storeDir}: snapshot ids past ${MAX_SNAPSHOT_ID} (${oversized[0] ?? `next would be ${max + 1}`}); the store is corrupt or was written by something else, refusing to add to it`,
    );
  }
  return max + 1;
}

/**
 * Names in `dir` that hold an id (group 1 of `re`, no leading zero): the ids
 * within the bound (of entries `counts` accepts), and every name past it.
 */
async function scanIds(dir: string, re: RegExp, counts: (e: Dirent) => boolean = () => true): Promise<{ ids: number[]; oversized: string[] }> {
  const ids: number[] = [];
  const oversized: string[] = [];
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { ids, oversized };
    throw err;
  }
  for (const e of entries) {
    const digits = re.exec(e.name)?.[1];
    if (digits === undefined || digits.startsWith('0')) continue;
    const id = parseSnapshotId(digits);
    if (id === undefined) oversized.push(e.name);
    else if (counts(e)) ids.push(id);
  }
  return { ids, oversized };
}
