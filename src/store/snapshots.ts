/**
 * Reading the published state of a store: which snapshots exist, which one is
 * latest, and the next id to assign.
 */
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { lstatOrUndefined, readlinkOrUndefined } from '../util/fs.js';
import { parseLatestTarget, parseSnapshotId, type StoreLayout } from './layout.js';
import { listMetaIds } from './metadata.js';

/** Snapshot ids present in snapshots/, ascending. Other names are ignored. */
export async function listSnapshotIds(layout: StoreLayout): Promise<number[]> {
  let names: string[];
  try {
    names = await fs.readdir(layout.snapshotsDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  return names
    .map(parseSnapshotId)
    .filter((n): n is number => n !== undefined)
    .sort((a, b) => a - b);
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
  let max = 0;
  for (const id of await listSnapshotIds(layout)) max = Math.max(max, id);
  for (const id of await listMetaIds(layout)) max = Math.max(max, id);
  try {
    const last = parseSnapshotId((await fs.readFile(layout.lastIdFile, 'utf8')).trim());
    if (last !== undefined) max = Math.max(max, last);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  return max + 1;
}
