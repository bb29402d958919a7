/**
 * btrfs subvolumes through the real `btrfs` tool. A subvolume's root
 * directory has inode number 256 on btrfs; that is how one is recognised
 * without asking the tool.
 */
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { runProcess } from './process.js';

const BTRFS_SUPER_MAGIC = 0x9123683e;
const SUBVOLUME_ROOT_INO = 256;

export async function isOnBtrfs(p: string): Promise<boolean> {
  try {
    return (await fs.statfs(p)).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

export async function isSubvolume(p: string): Promise<boolean> {
  try {
    const st = await fs.lstat(p);
    return st.isDirectory() && st.ino === SUBVOLUME_ROOT_INO && (await isOnBtrfs(p));
  } catch {
    return false;
  }
}

async function btrfs(args: string[]): Promise<void> {
  let end;
  try {
    end = await runProcess('btrfs', args, { stdout: 'ignore' });
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new Error('btrfs-progs is not installed (btrfs not found in PATH)');
    throw err;
  }
  if (end.code !== 0) throw new Error(`btrfs ${args.join(' ')}: ${end.stderr.trim().split('\n').pop() ?? `exit ${end.code}`}`);
}

export const createSubvolume = (p: string): Promise<void> => btrfs(['subvolume', 'create', p]);
/** A writable snapshot of `from` at `to` (O(1), whatever the tree's size). */
export const snapshotSubvolume = (from: string, to: string): Promise<void> => btrfs(['subvolume', 'snapshot', from, to]);
export const setReadOnly = (p: string): Promise<void> => btrfs(['property', 'set', '-ts', p, 'ro', 'true']);

/**
 * Delete a subvolume. One call, whatever its size, unless subvolumes are
 * nested in it (reposnap never makes those; a user might): then those go
 * first, found by walking it.
 */
export async function deleteSubvolume(p: string): Promise<void> {
  try {
    await btrfs(['subvolume', 'delete', p]);
  } catch (err) {
    await deleteNestedSubvolumes(p);
    if (!(await isSubvolume(p))) throw err;
    await btrfs(['subvolume', 'delete', p]);
  }
}

/** Delete every subvolume below `dir` (not `dir` itself), deepest first. */
export async function deleteNestedSubvolumes(dir: string): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const p = `${dir}/${e.name}`;
    if (await isSubvolume(p)) await deleteSubvolume(p);
    else await deleteNestedSubvolumes(p);
  }
}

export async function hasBtrfsTool(): Promise<boolean> {
  try {
    return (await runProcess('btrfs', ['--version'], { stdout: 'ignore' })).code === 0;
  } catch {
    return false;
  }
}
