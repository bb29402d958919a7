/**
 * Giving an entry of a tree being built an inode of its own.
 *
 * A hardlinked clone shares every file's and symlink's inode with the
 * snapshot it was cloned from (GNU cp -al links symlinks too). Replacing an
 * entry (a new file renamed over it) leaves the snapshot alone; changing its
 * mode, owner or times in place would change the snapshot as well. A tool
 * that can only change attributes in place (rsync, for a symlink whose
 * target is unchanged) is first given a private copy to change: made under
 * a temporary name beside the entry, with the same content and attributes,
 * and renamed over it, so a reader of the clone never sees it missing.
 */
import type { Stats } from 'node:fs';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { isRoot } from '../util/identity.js';
import { tempNameBytes } from '../util/temp-name.js';
import { copyAttributes } from './attributes.js';
import type { BPath } from './bytes.js';

/**
 * Make `p` private if another tree holds its inode (more than one link);
 * with `which` "symlink", only if it is a symlink. Returns whether it did;
 * a path that is gone or is a directory (never shared) is left alone.
 */
export async function unshareEntry(p: BPath, which: 'symlink' | 'any' = 'any'): Promise<boolean> {
  let st: Stats;
  try {
    st = await fs.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
  if (st.isDirectory() || st.nlink <= 1 || (which === 'symlink' && !st.isSymbolicLink())) return false;
  const slash = p.lastIndexOf(0x2f);
  const tmp = tempNameBytes(p.subarray(0, slash), p.subarray(slash + 1), 'own');
  try {
    if (st.isSymbolicLink()) {
      await fs.symlink(await fs.readlink(p, { encoding: 'buffer' }), tmp);
      if (isRoot) await fs.lchown(tmp, st.uid, st.gid);
      await fs.lutimes(tmp, st.atime, st.mtime);
    } else if (st.isFile()) {
      await fs.copyFile(p, tmp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
      await copyAttributes(tmp, st);
    } else {
      return false;
    }
    await fs.rename(tmp, p);
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  return true;
}
