/**
 * Cloning a directory tree by hardlinks, reflinks or copies.
 *
 * Symlinks are recreated, never followed. Directory modes, times and (as
 * root) owners are reproduced after their contents are filled in, so
 * filling them does not disturb the times. GNU cp does the common case (see
 * cp-clone.ts); the walk here is the fallback with progress and exclusions.
 */
import { constants as fsc, type Dirent, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { runProcess } from '../util/process.js';
import { DIR_CONCURRENCY, FS_CONCURRENCY, Limiter, mapLimit, settleAll } from '../util/limit.js';
import { copyAttributes } from './attributes.js';
import { bjoin, bpath, showPath, type BPath } from './bytes.js';
import { cpClone } from './cp-clone.js';
import { isRoot } from '../util/identity.js';
import { abortSignal } from '../util/abort.js';

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
  // An aborted sync stops the walk at the next folder (and an aborted cp is not done again this way).
  const signal = abortSignal();

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
    signal?.throwIfAborted();
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
  await runProcess('du', ['-s', '-x', '--', root], { stdout: 'ignore' }).catch(() => undefined);
}
