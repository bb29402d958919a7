/**
 * Making one tree equal to another (syncTree): entries compared with the
 * quick check (compare.ts), what changed copied (or linked) under a
 * temporary name and renamed into place, what is gone deleted. Never a
 * write into an existing file: the target shares inodes with published
 * snapshots. Used by the local, git and tarball sources, and to bring a
 * quarantine back into place.
 */
import { constants as fsc, lstatSync, readdirSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { DIR_CONCURRENCY, FS_CONCURRENCY, Limiter, mapLimit, settleAll } from '../util/limit.js';
import { tempNameBytes } from '../util/temp-name.js';
import { copyAttributes } from './attributes.js';
import { bjoin, bpath, showPath, type BPath } from './bytes.js';
import { sameBytes, sameFile, sameOwner, sameOwnerMode, sameTime } from './compare.js';
import { trustedReader, type SourceDir, type SourceReader } from './source-reader.js';
import { isRoot } from '../util/identity.js';
import { abortSignal } from '../util/abort.js';

export interface TreeStats {
  /** Entries in the resulting tree that are not directories. */
  files: number;
  /** Bytes in the resulting tree's regular files. */
  bytes: number;
}

export interface ChangeStats {
  added: number;
  updated: number;
  deleted: number;
  /** Bytes of file content written into the target. */
  bytesTransferred: number;
}

export function emptyChanges(): ChangeStats {
  return { added: 0, updated: 0, deleted: 0, bytesTransferred: 0 };
}

export interface MirrorProgress {
  /** Entries examined so far. */
  scanned: number;
  /** Entries changed so far. */
  changed: number;
}

export interface MirrorResult {
  changed: boolean;
  changes: ChangeStats;
  tree: TreeStats;
}

export interface SyncTreeOptions {
  repo: string;
  excludeTop: string[];
  /** Link new files from the source instead of copying them. */
  link: boolean;
  /**
   * How files are judged unchanged. "quick" (default): size, mtime, mode and
   * owner, like rsync. "content": also equal bytes; for sources whose mtimes
   * are coarse (tar stores whole seconds), where a same-size rewrite within a
   * second would otherwise be missed. "content-any-mtime": size, mode, owner
   * and bytes; for trees whose mtimes mean nothing (a git checkout), so that
   * unchanged files are still shared with the previous snapshot.
   */
  compare?: 'quick' | 'content' | 'content-any-mtime';
  onProgress?: (p: MirrorProgress) => void;
  /** Called with each file's `dst`-relative path once its new content is in place. */
  onWritten?: (path: string) => void;
  /** Awaited once, right after the first change is in place (a failpoint). */
  midway?: () => Promise<void>;
  /** How the source tree is read (default: by path, for trees reposnap made). */
  reader?: SourceReader;
}

/** Link `from` as `to`; false when they are on different filesystems (EXDEV). */
async function linkOrCross(from: BPath, to: BPath): Promise<boolean> {
  try {
    await fs.link(from, to);
    return true;
  } catch (err) {
    if (errnoCode(err) === 'EXDEV') return false;
    throw err;
  }
}

/**
 * Make the tree at `dst` equal to the tree at `src`. `src` is read with
 * `opts.reader`: by path for trees reposnap made, anchored to descriptors
 * for a tree someone else controls (see tree/source-reader.ts).
 */
export async function syncTree(src: string, dst: string, opts: SyncTreeOptions): Promise<MirrorResult> {
  const reader = opts.reader ?? trustedReader;
  if (opts.link && !reader.byPath) throw new ReposnapError('EINTERNAL', 'syncTree: linking needs a reader by path');
  const limiter = new Limiter(FS_CONCURRENCY);
  const changes: ChangeStats = emptyChanges();
  const tree: TreeStats = { files: 0, bytes: 0 };
  const progress: MirrorProgress = { scanned: 0, changed: 0 };
  const exclude = new Set(opts.excludeTop);
  let midway = opts.midway;
  /** Where `dst`-relative paths begin in a destination path (bjoin always adds a slash). */
  const relFrom = Buffer.byteLength(dst) + 1;
  // An aborted sync stops the walk at the next folder; what is in flight lands first.
  const signal = abortSignal();

  const fail = (what: string, p: BPath, err: unknown): never => {
    if (err instanceof ReposnapError) throw new ReposnapError(err.code, err.code === 'EUNSAFE' ? `repo ${opts.repo}: ${err.message}` : err.message, { cause: err });
    const code = errnoCode(err) ?? String(err);
    throw new ReposnapError('ESOURCE', `repo ${opts.repo}: cannot ${what} ${showPath(p)}: ${code}`, { cause: err });
  };
  const note = (kind: keyof Omit<ChangeStats, 'bytesTransferred'>): void => {
    changes[kind]++;
    progress.changed++;
  };

  /** Put a new file, symlink or directory built at `tmp` in place of `d`. */
  const replace = async (tmp: BPath, d: BPath, old: Stats | undefined): Promise<void> => {
    if (old?.isDirectory()) await fs.rm(d, { recursive: true, force: true });
    await fs.rename(tmp, d);
    if (midway) {
      const m = midway;
      midway = undefined;
      await m();
    }
  };

  const syncEntry = async (sDir: SourceDir, name: BPath, d: BPath, dDir: BPath, sst: Stats, dst: Stats | undefined): Promise<void> => {
    const shown = bjoin(sDir.shown, name);
    if (sst.isFile()) {
      tree.files++;
      tree.bytes += sst.size;
      if (dst && dst.isFile() && (await unchanged(sDir, name, d, sst, dst))) return;
      const tmp = tempNameBytes(dDir, name);
      try {
        if (opts.link && (await linkOrCross(sDir.path(name), tmp))) {
          // linked
        } else if (opts.link) {
          // Across filesystems (an overlay target, a scratch folder elsewhere): a copy.
          await fs.copyFile(sDir.path(name), tmp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
          await copyAttributes(tmp, sst);
        } else {
          // The attributes are those of what was copied (the reader may
          // have found the file to be another than the one looked at).
          await copyAttributes(tmp, await sDir.copyFile(name, sst, tmp));
        }
        await replace(tmp, d, dst);
      } catch (err) {
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        fail('copy', shown, err);
      }
      opts.onWritten?.(d.subarray(relFrom).toString('utf8'));
      changes.bytesTransferred += sst.size;
      note(dst ? 'updated' : 'added');
    } else if (sst.isSymbolicLink()) {
      tree.files++;
      const target = await sDir.readlink(name).catch((err: unknown) => fail('read link', shown, err));
      if (dst?.isSymbolicLink()) {
        const old = await fs.readlink(d, { encoding: 'buffer' });
        if (old.equals(target) && sameOwner(sst, dst) && (compare === 'content-any-mtime' || sameTime(sst, dst))) return;
      }
      const tmp = tempNameBytes(dDir, name);
      try {
        await fs.symlink(target, tmp);
        await fs.lutimes(tmp, sst.atime, sst.mtime);
        if (isRoot) await fs.lchown(tmp, sst.uid, sst.gid);
        await replace(tmp, d, dst);
      } catch (err) {
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        fail('copy symlink', shown, err);
      }
      note(dst ? 'updated' : 'added');
    } else {
      throw new ReposnapError('EUNSAFE', `repo ${opts.repo}: refusing special file (device, FIFO or socket) ${showPath(shown)}`);
    }
  };

  // Folders are listed and stat'ed on this thread: a stretch of the tree
  // where nothing changed would otherwise never give the event loop a turn
  // (signals, an abort, progress), so it gets one every few milliseconds.
  let lastYield = performance.now();
  const syncDir = async (sDir: SourceDir, d: BPath, sst: Stats, top: boolean): Promise<void> => {
    if (performance.now() - lastYield > 10) {
      await new Promise((r) => setImmediate(r));
      lastYield = performance.now();
    }
    signal?.throwIfAborted();
    let sNames: BPath[];
    try {
      sNames = sDir.names();
    } catch (err) {
      sNames = fail('read directory', sDir.shown, err);
    }
    const dEntries = readdirSync(d, { withFileTypes: true, encoding: 'buffer' });
    const dNames = new Map<string, BPath>();
    for (const e of dEntries) {
      const key = e.name.toString('latin1');
      if (top && exclude.has(e.name.toString())) continue;
      dNames.set(key, e.name);
    }
    const work: Array<Promise<void>> = [];
    const subdirs: Array<{ name: BPath; dp: BPath; st: Stats }> = [];
    // Both sides of every entry are stat'ed here, one after another, and an
    // unchanged file costs nothing more: on a Gentoo-sized tree (121k
    // entries), a promise and two thread-pool round trips for each made
    // the walk most of a 1% change's fill. Only what changes is queued.
    try {
      for (const name of sNames) {
        const key = name.toString('latin1');
        if (top && exclude.has(name.toString())) continue;
        const present = dNames.has(key);
        dNames.delete(key);
        const dp = bjoin(d, name);
        let sst2: Stats;
        try {
          sst2 = sDir.lstatSync(name);
        } catch (err) {
          sst2 = fail('read', bjoin(sDir.shown, name), err);
        }
        const dst2 = present ? lstatSync(dp) : undefined;
        progress.scanned++;
        if (sst2.isDirectory()) {
          subdirs.push({ name, dp, st: sst2 });
          if (dst2?.isDirectory()) {
            if (!sameOwnerMode(sst2, dst2)) note('updated');
            continue;
          }
          work.push(
            limiter.run(async () => {
              if (dst2) {
                await fs.rm(dp, { recursive: true, force: true });
                note('deleted');
              }
              await fs.mkdir(dp, { mode: 0o700 });
              note('added');
            }),
          );
        } else if (compare === 'quick' && sst2.isFile() && dst2?.isFile() && sameFile(sst2, dst2)) {
          tree.files++;
          tree.bytes += sst2.size;
        } else {
          work.push(limiter.run(() => syncEntry(sDir, name, dp, d, sst2, dst2)));
        }
      }
    } catch (err) {
      // What was queued lands (or fails) before the error is the walk's.
      await settleAll(work).catch(() => undefined);
      throw err;
    }
    // What the target has and the source has not goes.
    for (const name of dNames.values()) {
      const dp = bjoin(d, name);
      work.push(
        limiter.run(async () => {
          await fs.rm(dp, { recursive: true, force: true });
          note('deleted');
        }),
      );
    }
    await settleAll(work);
    opts.onProgress?.(progress);
    // A few subdirectories at a time: a walk that opened them all at once
    // would hold the whole tree's listings (and descriptors) in memory.
    await mapLimit(subdirs, DIR_CONCURRENCY, async (x) => {
      let sub: SourceDir;
      try {
        sub = sDir.openDir(x.name, x.st);
      } catch (err) {
        sub = fail('read directory', bjoin(sDir.shown, x.name), err);
      }
      try {
        await syncDir(sub, x.dp, x.st, false);
      } finally {
        sub.close();
      }
    });
    // Directories are private to the target (never shared with a snapshot),
    // so their attributes are set in place, after their contents; only
    // where they differ, so that a folder nothing changed in keeps its
    // ctime (an incremental verification lists the folders whose ctime moved).
    const now = lstatSync(d);
    if (!sameOwnerMode(sst, now) || !sameTime(sst, now)) await limiter.run(() => copyAttributes(d, sst));
  };

  const compare = opts.compare ?? 'quick';
  const unchanged = async (sDir: SourceDir, name: BPath, d: BPath, a: Stats, b: Stats): Promise<boolean> => {
    if (compare === 'content-any-mtime') return a.size === b.size && sameOwnerMode(a, b) && (await sameBytes(sDir.path(name), d));
    if (!sameFile(a, b)) return false;
    return compare === 'quick' || (await sameBytes(sDir.path(name), d));
  };

  const root = await reader.openRoot(src).catch((err: unknown) => fail('read directory', bpath(src), err));
  try {
    const dRoot = await fs.lstat(dst);
    if (!sameOwnerMode(root.stat, dRoot)) note('updated');
    await syncDir(root.dir, bpath(dst), root.stat, true);
  } finally {
    root.dir.close();
  }
  return { changed: progress.changed > 0, changes, tree };
}
