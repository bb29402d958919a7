/**
 * Reading the source side of a tree sync.
 *
 * Two readers. `trustedReader` reads by path: for trees reposnap made itself
 * (an extracted archive, a git checkout, a quarantine). `anchoredReader`
 * reads a tree someone else controls (the local source, as root, on a
 * folder a user can write) without ever following a symlink it did not
 * choose to:
 *
 * - every folder is opened with O_NOFOLLOW | O_DIRECTORY relative to its
 *   parent's open descriptor (through /proc/self/fd/N/name, which is openat()
 *   on Linux), so swapping a folder for a symlink, anywhere in the tree,
 *   after it was looked at changes nothing: the walk holds the folder itself;
 * - every file is opened with O_NOFOLLOW | O_NONBLOCK, checked with fstat to
 *   be the very inode the walk looked at (same type, same inode), copied from
 *   that descriptor, and given the type, mode, owner and times fstat reports:
 *   what is published is what was read, never a root-only file's content
 *   under a user's owner and mode;
 * - an entry whose type or identity changed between the look and the open is
 *   refused (the sync fails, nothing is committed): a hostile upstream can
 *   stop its own update, never make root publish what it could not read;
 * - the folder sync-uri names is reached from / one component at a time; a
 *   symlink on the way is followed only where only root could have put it
 *   (owned by root, in a folder only root can write or a sticky one).
 *
 * The guarantee, then: as root, a local source publishes only what its
 * owner could have published by copying, with the modes and owners the
 * files really have; content is a snapshot of each file as it was read (a
 * file rewritten meanwhile may be torn, as with any copy).
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { bjoin, type BPath } from './bytes.js';


export interface SourceDir {
  /** The folder's real path, for messages. */
  readonly shown: BPath;
  /**
   * Listing, stat'ing, opening and closing happen on the calling thread: a
   * walk does them for every entry and folder, and on a cached tree each
   * costs far less than a round trip through the thread pool.
   */
  names(): BPath[];
  lstatSync(name: BPath): Stats;
  readlink(name: BPath): Promise<BPath>;
  /** Open the subfolder `name`, which was looked at as `seen`. */
  openDir(name: BPath, seen: Stats): SourceDir;
  /**
   * Copy the file `name`, looked at as `seen`, to `to` (which must not
   * exist); returns the attributes of what was copied.
   */
  copyFile(name: BPath, seen: Stats, to: BPath): Promise<Stats>;
  /** A path to the entry, for readers that may use one (hardlinking, comparing bytes). */
  path(name: BPath): BPath;
  close(): void;
}

export interface SourceReader {
  openRoot(root: string): Promise<{ dir: SourceDir; stat: Stats }>;
  /** Whether entries may be hardlinked or compared by path (our own trees only). */
  readonly byPath: boolean;
}


// ---------------------------------------------------------------- trusted

class PathDir implements SourceDir {
  constructor(readonly shown: BPath) {}
  names(): BPath[] {
    return readdirSync(this.shown, { encoding: 'buffer' });
  }
  lstatSync(name: BPath): Stats {
    return lstatSync(bjoin(this.shown, name));
  }
  readlink(name: BPath): Promise<BPath> {
    return fs.readlink(bjoin(this.shown, name), { encoding: 'buffer' });
  }
  openDir(name: BPath): SourceDir {
    return new PathDir(bjoin(this.shown, name));
  }
  async copyFile(name: BPath, seen: Stats, to: BPath): Promise<Stats> {
    await fs.copyFile(bjoin(this.shown, name), to, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    return seen;
  }
  path(name: BPath): BPath {
    return bjoin(this.shown, name);
  }
  close(): void {}
}

export const trustedReader: SourceReader = {
  byPath: true,
  async openRoot(root) {
    return { dir: new PathDir(Buffer.from(root)), stat: await fs.stat(root) };
  },
};

// --------------------------------------------------------------- anchored

const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;
const FILE_FLAGS = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY;

function viaFd(fd: number, name?: BPath): BPath {
  const base = Buffer.from(`/proc/self/fd/${fd}`);
  return name === undefined ? base : bjoin(base, name);
}

function kind(st: Stats): string {
  if (st.isFile()) return 'a file';
  if (st.isDirectory()) return 'a folder';
  if (st.isSymbolicLink()) return 'a symlink';
  return 'a special file';
}

function changed(shown: BPath, what: string): ReposnapError {
  return new ReposnapError('EUNSAFE', `${showBytes(shown)} changed while it was read (${what}); refusing it, nothing is committed`);
}

function showBytes(p: BPath): string {
  return JSON.stringify(p.toString('utf8')).slice(1, -1);
}

class AnchoredDir implements SourceDir {
  constructor(
    readonly shown: BPath,
    /** An open descriptor on the folder: every name is looked up in it, never by path from /. */
    private readonly fd: number,
  ) {}
  names(): BPath[] {
    return readdirSync(viaFd(this.fd), { encoding: 'buffer' });
  }
  lstatSync(name: BPath): Stats {
    return lstatSync(viaFd(this.fd, name));
  }
  readlink(name: BPath): Promise<BPath> {
    return fs.readlink(viaFd(this.fd, name), { encoding: 'buffer' });
  }
  openDir(name: BPath, seen: Stats): SourceDir {
    const shown = bjoin(this.shown, name);
    let fd: number;
    try {
      fd = openSync(viaFd(this.fd, name), DIR_FLAGS);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ELOOP' || code === 'ENOTDIR') throw changed(shown, 'a folder became something else');
      throw err;
    }
    const st = fstatSync(fd);
    if (st.ino !== seen.ino || st.dev !== seen.dev) {
      closeSync(fd);
      throw changed(shown, 'another folder took its place');
    }
    return new AnchoredDir(shown, fd);
  }
  async copyFile(name: BPath, seen: Stats, to: BPath): Promise<Stats> {
    const shown = bjoin(this.shown, name);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(viaFd(this.fd, name), FILE_FLAGS);
    } catch (err) {
      if (errnoCode(err) === 'ELOOP') throw changed(shown, 'a file became a symlink');
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw changed(shown, `a file became ${kind(st)}`);
      if (st.ino !== seen.ino || st.dev !== seen.dev) throw changed(shown, 'another file took its place');
      // Reopening the descriptor's own link opens this inode, whatever its
      // name has become since.
      await fs.copyFile(viaFd(fh.fd), to, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
      return st;
    } finally {
      await fh.close();
    }
  }
  path(name: BPath): BPath {
    return viaFd(this.fd, name);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/**
 * Open `root` from / one component at a time, never following a symlink
 * that someone other than root could have placed; a descriptor on it.
 */
function openRootAnchored(root: string): number {
  let fd = openSync('/', DIR_FLAGS);
  const parts = root.split('/').filter((p) => p !== '' && p !== '.');
  let hops = 0;
  try {
    while (parts.length > 0) {
      const name = Buffer.from(parts.shift() as string);
      const at = viaFd(fd, name);
      const st = lstatSync(at);
      if (st.isSymbolicLink()) {
        const dir = fstatSync(fd);
        const onlyRoot = st.uid === 0 && dir.uid === 0 && ((dir.mode & 0o022) === 0 || (dir.mode & 0o1000) !== 0);
        if (!onlyRoot) {
          throw new ReposnapError('EUNSAFE', `source ${root}: ${name.toString()} is a symlink someone other than root can replace; name the folder it points to`);
        }
        if (++hops > 40) throw new ReposnapError('ESOURCE', `source ${root}: too many levels of symlinks`);
        const target = readlinkSync(at).toString();
        if (target.startsWith('/')) {
          const top = openSync('/', DIR_FLAGS);
          closeSync(fd);
          fd = top;
        }
        parts.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
        continue;
      }
      const next = openSync(at, DIR_FLAGS);
      closeSync(fd);
      fd = next;
    }
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

export const anchoredReader: SourceReader = {
  byPath: false,
  async openRoot(root) {
    const fd = openRootAnchored(root);
    return { dir: new AnchoredDir(Buffer.from(root), fd), stat: fstatSync(fd) };
  },
};
