/**
 * Pinned snapshots: kept by collection whatever their age and number, until
 * unpinned. A pin is an empty file reposnap/pins/<id>, made and removed in
 * one call each, so two commands pinning at once cannot lose each other's
 * pin. Portage's own collection knows nothing of pins (it only ages
 * snapshots by their folder's mtime).
 */
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { fsyncDir } from '../util/fs.js';
import type { StoreLayout } from './layout.js';

/** Pin snapshot `id`; false when it already was. */
export async function pinSnapshot(layout: StoreLayout, id: number): Promise<boolean> {
  await fs.mkdir(layout.pinsDir, { recursive: true, mode: 0o755 });
  try {
    await (await fs.open(layout.pin(id), 'wx', 0o644)).close();
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
  await fsyncDir(layout.pinsDir);
  return true;
}

/** Unpin snapshot `id`; false when it was not pinned. */
export async function unpinSnapshot(layout: StoreLayout, id: number): Promise<boolean> {
  try {
    await fs.unlink(layout.pin(id));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return false;
    throw err;
  }
  await fsyncDir(layout.pinsDir);
  return true;
}

export async function isPinned(layout: StoreLayout, id: number): Promise<boolean> {
  try {
    await fs.access(layout.pin(id));
    return true;
  } catch {
    return false;
  }
}
