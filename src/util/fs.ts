/**
 * Small filesystem primitives with the durability rules reposnap relies on:
 * anything published is written to a new name, fsynced, then renamed, and the
 * directory holding the new name is fsynced so the rename survives a power cut.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { runProcess } from './process.js';
import { isAlive, tempName, temporaryWriter } from './temp-name.js';
import { deleteNestedSubvolumes, deleteSubvolume, isOnBtrfs, isSubvolume } from './btrfs.js';
import { mountsUnder, unmount } from './mounts.js';



/**
 * Remove temporaries (made by tempName) in `dir` whose writer is dead: a
 * process killed between creating one and renaming it leaves it behind.
 * `prefix` limits the sweep to temporaries of one name (beside a location,
 * whose directory holds other people's files). Returns how many went.
 */
export async function removeDeadTemporaries(dir: string, prefix = ''): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return 0;
    throw err;
  }
  let n = 0;
  for (const name of names) {
    const writer = temporaryWriter(name);
    if (writer === undefined || !name.startsWith(prefix) || isAlive(writer)) continue;
    await removeTree(path.join(dir, name)); // a btrfs probe is a subvolume
    n++;
  }
  return n;
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await fs.open(p, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so that renames and creations inside it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  await fsyncPath(dir);
}

/** Write a file atomically: temp file, fsync, rename, fsync the directory. */
export async function atomicWriteFile(target: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempName(target);
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await fs.rename(tmp, target);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(target));
}

/**
 * Point the symlink `link` at `target` atomically: create it under a new name
 * and rename it over the old one, so a reader sees either the old or the new
 * target and never a missing link.
 */
export async function atomicSymlink(target: string, link: string): Promise<void> {
  const tmp = tempName(link, 'new');
  await fs.symlink(target, tmp);
  try {
    await fs.rename(tmp, link);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(link));
}

/**
 * Make everything written on the filesystem holding `p` durable with one
 * syncfs(2) (coreutils `sync -f`). One call instead of an fsync per file:
 * a source such as rsync does not tell us which files it wrote, and walking
 * a 100k-file tree to fsync each costs more than the flush itself.
 */
export async function syncFilesystem(p: string): Promise<void> {
  const end = await runProcess('sync', ['-f', p]);
  if (end.code === 0) return;
  // No `sync -f` (very old coreutils, busybox): flush everything. Any other
  // failure is a real write error and must stop the commit.
  if (/invalid option|unrecognized option/i.test(end.stderr)) {
    if ((await runProcess('sync', [])).code === 0) return;
  }
  throw new Error(`sync -f ${p} failed: ${end.stderr.trim().split('\n').pop() ?? `exit ${end.code}`}`);
}

export async function lstatOrUndefined(p: string | Buffer): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

export async function readlinkOrUndefined(p: string): Promise<string | undefined> {
  try {
    return await fs.readlink(p);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'EINVAL' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

export async function isEmptyDir(p: string): Promise<boolean> {
  const dir = await fs.opendir(p);
  try {
    return (await dir.read()) === null;
  } finally {
    await dir.close().catch(() => undefined);
  }
}

/**
 * Remove a tree without following symlinks; missing is fine. btrfs
 * subvolumes in it (snapshots made by the btrfs backend, read-only ones
 * included) are deleted as subvolumes, and overlays mounted in it (the
 * overlayfs backend's snapshots and staging) are unmounted first, so any
 * backend's trees, or a store mixing them, are removed by the same call.
 */
export async function removeTree(p: string): Promise<void> {
  // Never delete through an overlay: that would write whiteouts into its
  // upper layer, or fail on a read-only one. Unmounted, it is a plain folder.
  for (const m of await mountsUnder(p)) if (m.fsType === 'overlay') await unmount(m.mountPoint, { lazy: true });
  if (await isSubvolume(p)) {
    await deleteSubvolume(p);
    return;
  }
  try {
    await rmRecursive(p);
  } catch (err) {
    const code = errnoCode(err);
    if ((code !== 'EROFS' && code !== 'EPERM' && code !== 'ENOTEMPTY') || !(await isOnBtrfs(p))) throw err;
    await deleteNestedSubvolumes(p);
    await rmRecursive(p);
  }
}

/**
 * `rm -rf` for directories: GNU rm removes a 100k-entry tree in constant
 * memory, where fs.rm's recursion holds the whole listing (measured at
 * hundreds of MB). Files and small cases go through fs.rm directly.
 */
async function rmRecursive(p: string): Promise<void> {
  const st = await lstatOrUndefined(p);
  if (!st) return;
  if (!st.isDirectory()) return fs.rm(p, { force: true });
  // A few tries, as fs.rm's maxRetries: something still finishing its writes
  // in the tree (an aborted extraction) makes a pass fail with ENOTEMPTY.
  for (let attempt = 0; ; attempt++) {
    let end;
    try {
      end = await runProcess('rm', ['-rf', '--', p], { stdout: 'ignore' });
    } catch (err) {
      // No rm at all: fs.rm does it, in more memory.
      if (errnoCode(err) === 'ENOENT') return fs.rm(p, { recursive: true, force: true, maxRetries: 2 });
      throw err;
    }
    if (end.code === 0) return;
    const stderr = end.stderr;
    const code = /Read-only file system/.test(stderr) ? 'EROFS' : /Operation not permitted/.test(stderr) ? 'EPERM' : /Directory not empty/.test(stderr) ? 'ENOTEMPTY' : 'EIO';
    if (code === 'ENOTEMPTY' && attempt < 4) {
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      continue;
    }
    const e = new Error(`cannot remove ${p}: ${stderr.trim().split('\n')[0] ?? ''}`) as Error & { code?: string };
    e.code = code;
    throw e;
  }
}

/** Why readRegularFile refused a file. */
export class NotReadable extends Error {}

/**
 * A regular file's bytes, opened without blocking and without following a
 * final symlink (a FIFO where a file is expected cannot hang the read, a
 * link cannot lead elsewhere), and refused before a byte is read if it is
 * not a regular file or `check` refuses its stat (a size bound, say).
 */
export function readRegularFile(file: string, check?: (st: Stats) => void): Buffer {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    throw new NotReadable(`cannot be read (${errnoCode(err) ?? String(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotReadable('not a regular file');
    check?.(st);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
