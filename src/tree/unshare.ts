/**
 * Giving a symlink of a tree being built an inode of its own.
 *
 * A hardlinked clone shares every file's and symlink's inode with the
 * snapshot it was cloned from (GNU cp -al links symlinks too). Replacing an
 * entry (a new one renamed over it) leaves the snapshot alone; changing its
 * owner or times in place would change the snapshot as well. rsync can only
 * change a symlink's attributes in place (files it is told to write anew:
 * --ignore-times), so a shared symlink it is about to touch is first
 * recreated under a temporary name beside it, with the same target, owner
 * and times, and renamed over it: a reader of the clone never sees it
 * missing.
 */
import { lstatSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { isRoot } from '../util/identity.js';
import { tempNameBytes } from '../util/temp-name.js';
import type { BPath } from './bytes.js';

/**
 * Recreate `p` if it is a symlink another tree holds too (more than one
 * link). Returns whether it did; anything else, or nothing there, is left
 * alone.
 */
export async function unshareSymlink(p: BPath): Promise<boolean> {
  // A synchronous lstat: an apply asks this of every path it lists, nearly
  // all of them not shared symlinks, and waits for the answers; a promise's
  // lstat costs several times the CPU (2,656 paths of a Gentoo tree,
  // cached: 13-25 ms against 58-183 ms), on a core the plan's walk wants.
  let st: Stats | undefined;
  try {
    st = lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
  if (!st?.isSymbolicLink() || st.nlink <= 1) return false;
  const slash = p.lastIndexOf(0x2f);
  const tmp = tempNameBytes(p.subarray(0, slash), p.subarray(slash + 1), 'own');
  try {
    await fs.symlink(await fs.readlink(p, { encoding: 'buffer' }), tmp);
    if (isRoot) await fs.lchown(tmp, st.uid, st.gid);
    await fs.lutimes(tmp, st.atime, st.mtime);
    await fs.rename(tmp, p);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  return true;
}
