/**
 * Migration: a location that is a plain directory with content becomes the
 * newest snapshot of the store, and the location becomes a symlink to it.
 *
 * The directory is cloned into staging (hardlinks where the store shares its
 * filesystem, copies across devices), committed, and then exchanged with the
 * symlink in one renameat2(RENAME_EXCHANGE): readers see the old directory or
 * the snapshot, never a missing location. The old directory, now beside the
 * location under a hidden name, is removed last; a kill before that leaves it
 * for the next run to remove.
 *
 * The caller holds the sync lock and the store lock.
 */
import path from 'node:path';
import type { SnapshotBackend } from '../backends/backend.js';
import { removeTree } from '../util/fs.js';
import { countEntries } from '../tree/clone.js';
import { publishSnapshot } from './commit.js';
import type { StoreLayout } from './layout.js';
import { locationKind, swapDirForSymlink } from './location.js';
import type { SnapshotMeta } from './metadata.js';
import { latestId } from './snapshots.js';
import { Staging } from './staging.js';

/** Names Portage keeps inside a location that are not repository content. */
export const QUARANTINE_DIR = '.tmp-unverified-download-quarantine';

export async function migrateLocation(layout: StoreLayout, backend: SnapshotBackend): Promise<SnapshotMeta | undefined> {
  // A migration that was cut short after its exchange left the old tree here.
  await removeTree(layout.locationAside);
  if ((await locationKind(layout.location)) !== 'dir') return undefined;

  // Clone the directory into a fresh staging tree. Staging left by an
  // interrupted migration is cloned from no snapshot (base = latest now, which
  // may be null); discard rather than reuse it, since a partial clone of the
  // location is not something a source will complete.
  const base = (await latestId(layout)) ?? null;
  const staging = await Staging.open(layout, base, null, backend);
  let files: number;
  try {
    await removeTree(staging.dir);
    await backend.clone(layout.location, staging.dir);
    // Portage's quarantine copy, if one was left inside the location, is not content.
    await removeTree(path.join(staging.dir, QUARANTINE_DIR));
    files = await countEntries(staging.dir);
  } catch (err) {
    await staging.discard().catch(() => undefined);
    throw err;
  }
  let meta: SnapshotMeta;
  try {
    meta = await publishSnapshot(
      layout,
      staging.dir,
      backend,
      { source: { type: 'migrate', uri: layout.location }, files },
      { fixLocation: false },
    );
  } catch (err) {
    await staging.discard().catch(() => undefined);
    throw err;
  }
  await staging.finish();
  await swapDirForSymlink(layout.location, layout.latest, layout.locationAside);
  await removeTree(layout.locationAside);
  return meta;
}
