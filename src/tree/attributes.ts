/**
 * What a snapshot entry's attributes may be, and copying them from a
 * source entry onto a new one.
 */
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import type { BPath } from './bytes.js';
import { isRoot } from '../util/identity.js';

/**
 * The permission bits a snapshot entry may have: never writable by group or
 * others, whatever the source says, so that nobody but the owner can change
 * a published tree (and, through hardlinks, older ones). A fill that does
 * not run as root (sync-user) makes no set-id files either: what it made is
 * given to the store's owner before commit, and a set-id bit would then be
 * root's.
 */
export const SNAPSHOT_MODE_BITS = isRoot ? 0o7755 : 0o1755;

/** Mode (less group/other write), times and (as root) owner of `st`, applied to `dst` (not a symlink). */
export async function copyAttributes(dst: BPath | string, st: Stats): Promise<void> {
  if (isRoot) await fs.chown(dst, st.uid, st.gid);
  // chown may clear set-id bits, so the mode comes after it.
  await fs.chmod(dst, st.mode & SNAPSHOT_MODE_BITS);
  await fs.utimes(dst, st.atime, st.mtime);
}
