/**
 * Cloning a directory tree by hardlinks or by copies.
 *
 * Paths are handled as Buffers: file names on Linux are bytes, and Node's
 * default UTF-8 decoding would turn a name that is not valid UTF-8 into one
 * that does not exist. Symlinks are recreated, never followed. Directory
 * modes, times and (as root) owners are reproduced after their contents are
 * filled in, so filling them does not disturb the times.
 */
import { spawn } from 'node:child_process';
import { constants as fsc, type Dirent, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { cpClone } from './cp-clone.js';
import { DIR_CONCURRENCY, FS_CONCURRENCY, Limiter, mapLimit } from './limit.js';

export type BPath = Buffer;

export function bjoin(dir: BPath, name: BPath): BPath {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

export function bpath(p: string): BPath {
  return Buffer.from(p);
}

/** Render a byte path for messages (invalid UTF-8 shown as escapes). */
export function showPath(p: BPath | string): string {
  if (typeof p === 'string') return JSON.stringify(p).slice(1, -1);
  let out = '';
  const text = p.toString('utf8');
  if (Buffer.from(text).equals(p)) return JSON.stringify(text).slice(1, -1);
  for (const b of p) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

export interface CloneStats {
  dirs: number;
  files: number;
  symlinks: number;
  linked: number;
  copied: number;
  bytesCopied: number;
}

export interface CloneOptions {
  /**
   * Regular files are hardlinked (falling back per file to a reflink or a
   * copy where a link is impossible, e.g. across btrfs subvolumes), cloned
   * with FICLONE (reflink: shared blocks, own inode; fails where the
   * filesystem cannot), or copied (with a reflink where one is possible).
   */
  method: 'link' | 'reflink' | 'copy';
  /** `to` exists already (an empty btrfs subvolume): fill it. */
  intoExisting?: boolean;
  /** Names to skip at the top level of the source. */
  excludeTop?: string[];
  /** Called after each entry, for progress. */
  onEntry?: (stats: CloneStats) => void;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Errors of link(2) that mean "this file cannot be linked here; copy it". */
const LINK_FALLBACK = new Set(['EXDEV', 'EMLINK', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP']);

/**
 * Clone the tree at `from` into `to` (which must not exist). Returns what was
 * done. Throws on the first error; the caller removes the partial tree.
 */
export async function cloneTree(from: string, to: string, opts: CloneOptions): Promise<CloneStats> {
  const stats: CloneStats = { dirs: 0, files: 0, symlinks: 0, linked: 0, copied: 0, bytesCopied: 0 };
  // GNU cp first where nothing is excluded and no per-entry progress is
  // wanted; it reports no counts.
  if (!opts.excludeTop?.length && !opts.onEntry && (await cpClone(from, to, opts.method, opts.intoExisting === true))) return stats;
  const limiter = new Limiter(FS_CONCURRENCY);
  const exclude = new Set(opts.excludeTop ?? []);

  const copyFlags = fsc.COPYFILE_EXCL | (opts.method === 'reflink' ? fsc.COPYFILE_FICLONE_FORCE : fsc.COPYFILE_FICLONE);
  const copyFile = async (src: BPath, dst: BPath, st?: Stats): Promise<void> => {
    const s = st ?? (await fs.lstat(src));
    await fs.copyFile(src, dst, copyFlags);
    await copyAttributes(dst, s);
    stats.copied++;
    stats.bytesCopied += s.size;
  };

  const cloneEntry = async (src: BPath, dst: BPath, ent: Dirent<Buffer>): Promise<void> => {
    if (ent.isFile()) {
      stats.files++;
      if (opts.method === 'link') {
        try {
          await fs.link(src, dst);
          stats.linked++;
          return;
        } catch (err) {
          if (!LINK_FALLBACK.has(errnoCode(err) ?? '')) throw err;
        }
      }
      await copyFile(src, dst);
    } else if (ent.isSymbolicLink()) {
      stats.symlinks++;
      const target = await fs.readlink(src, { encoding: 'buffer' });
      await fs.symlink(target, dst);
      const st = await fs.lstat(src);
      await fs.lutimes(dst, st.atime, st.mtime);
      if (isRoot) await fs.lchown(dst, st.uid, st.gid);
    } else if (opts.method === 'link') {
      // FIFOs, sockets and devices already in a snapshot (made by another
      // tool) are linked as they are; nothing new of that kind is created.
      stats.files++;
      await fs.link(src, dst);
      stats.linked++;
    } else {
      throw new ReposnapError('EUNSAFE', `refusing to copy special file ${showPath(src)}`);
    }
    opts.onEntry?.(stats);
  };

  const cloneDir = async (src: BPath, dst: BPath, top: boolean): Promise<void> => {
    const st = await limiter.run(() => fs.lstat(src));
    if (!(top && opts.intoExisting)) await limiter.run(() => fs.mkdir(dst, { mode: 0o700 }));
    stats.dirs++;
    const entries = await limiter.run(() => fs.readdir(src, { withFileTypes: true, encoding: 'buffer' }));
    const subdirs: Array<[BPath, BPath]> = [];
    const others: Array<Promise<void>> = [];
    for (const ent of entries) {
      if (top && exclude.has(ent.name.toString())) continue;
      const s = bjoin(src, ent.name);
      const d = bjoin(dst, ent.name);
      if (ent.isDirectory()) subdirs.push([s, d]);
      else others.push(limiter.run(() => cloneEntry(s, d, ent)));
    }
    await settleAll(others);
    await mapLimit(subdirs, DIR_CONCURRENCY, ([s, d]) => cloneDir(s, d, false));
    await limiter.run(() => copyAttributes(dst, st));
  };

  await cloneDir(bpath(from), bpath(to), true);
  return stats;
}

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

/**
 * Wait for every promise, then throw the first failure. Promise.all would
 * return at the first error while other operations still write into the tree
 * that the caller is about to remove.
 */
export async function settleAll(promises: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** Entries that are not directories below `root` (names only: no stat per file). */
export async function countEntries(root: string): Promise<number> {
  let n = 0;
  const walk = async (dir: BPath): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    const subdirs: Array<Promise<void>> = [];
    for (const e of entries) {
      if (e.isDirectory()) subdirs.push(walk(bjoin(dir, e.name)));
      else n++;
    }
    await Promise.all(subdirs);
  };
  await walk(bpath(root));
  return n;
}

/**
 * Stat every entry below `root` once, so the kernel has their inodes in
 * memory. GNU du does it from C (an fstatat per entry), far faster than a
 * Node walk. Best effort: a missing or failing du only loses the speed-up.
 */
export async function statWalk(root: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const child = spawn('du', ['-s', '-x', '--', root], { stdio: 'ignore' });
    child.on('error', () => resolve());
    child.on('close', () => resolve());
  });
}
