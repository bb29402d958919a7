/**
 * Keeping the location a symlink to `<store>/latest`.
 *
 * Replacing a symlink is an atomic rename. Replacing a directory (first sync,
 * an emptied location) uses renameat2(RENAME_EXCHANGE), which swaps the
 * directory and a new symlink in one step, so a reader never finds the
 * location missing; the old directory is then removed from its new name.
 */
import fsx from 'fs-native-extensions';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, ReposnapError } from '../errors.js';
import { atomicSymlink, fsyncDir, isEmptyDir, lstatOrUndefined, readlinkOrUndefined, removeTree } from '../util/fs.js';
import { tempName } from '../util/temp-name.js';
import type { StoreLayout } from './layout.js';

/**
 * Atomically put a symlink to `target` where the directory `dir` is, and move
 * the directory to `aside`. Falls back to two renames (a moment without a
 * location) on filesystems without RENAME_EXCHANGE.
 */
export async function swapDirForSymlink(dir: string, target: string, aside: string): Promise<void> {
  await removeTree(aside);
  await fs.symlink(target, aside);
  try {
    await fsx.swap(aside, dir);
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EINVAL' && code !== 'ENOSYS' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') {
      await fs.rm(aside, { force: true });
      throw err;
    }
    // No exchange here: move the directory away, then the symlink in.
    const link = tempName(dir, 'link');
    await fs.rename(aside, link);
    await fs.rename(dir, aside);
    await fs.rename(link, dir);
  }
  await fsyncDir(path.dirname(dir));
}

/**
 * Make the location a symlink to `<store>/latest` (the store path as
 * configured, as Portage writes it). Handles a missing location, a symlink
 * pointing elsewhere, and an empty directory. A non-empty directory is the
 * caller's business (migration); a file is refused.
 */
export async function ensureLocationLink(layout: StoreLayout): Promise<'ok' | 'fixed'> {
  const loc = layout.location;
  const want = layout.latest;
  const st = await lstatOrUndefined(loc);
  if (st?.isSymbolicLink()) {
    if ((await readlinkOrUndefined(loc)) === want) return 'ok';
    await atomicSymlink(want, loc);
    return 'fixed';
  }
  if (st === undefined) {
    await fs.mkdir(path.dirname(loc), { recursive: true, mode: 0o755 });
    await atomicSymlink(want, loc);
    return 'fixed';
  }
  if (st.isDirectory()) {
    if (!(await isEmptyDir(loc))) {
      throw new ReposnapError('ESTORE', `location ${loc} is a directory with content; it must be migrated into the store first`);
    }
    await swapDirForSymlink(loc, want, layout.locationAside);
    await removeTree(layout.locationAside);
    return 'fixed';
  }
  throw new ReposnapError('ESTORE', `location ${loc} is a file, not a directory or symlink; move it away`);
}

/** What the location is now. */
export async function locationKind(loc: string): Promise<'missing' | 'symlink' | 'empty-dir' | 'dir' | 'other'> {
  const st = await lstatOrUndefined(loc);
  if (!st) return 'missing';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isDirectory()) return (await isEmptyDir(loc)) ? 'empty-dir' : 'dir';
  return 'other';
}
