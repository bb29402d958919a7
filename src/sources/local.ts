/**
 * The `local` source: a directory on this machine, compared entry by entry
 * with the target (type, size, mtime, mode and, as root, owner) so that only
 * what changed is copied and what is gone is deleted.
 *
 * The same tree synchroniser brings a quarantine copy back into place, with
 * `link` set: there the new files are private to the quarantine, so they can
 * be linked into the location instead of copied.
 */
import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { DIR_CONCURRENCY, FS_CONCURRENCY, Limiter, mapLimit } from '../util/limit.js';
import { bjoin, bpath, copyAttributes, settleAll, showPath, SNAPSHOT_MODE_BITS, type BPath } from '../util/tree.js';
import { anchoredReader, trustedReader, type SourceDir, type SourceReader } from '../tree/source-reader.js';
import { failpoint } from '../util/failpoint.js';
import { tempNameBytes } from '../util/temp-name.js';
import { emptyChanges, requireSourceDir, type FillContext, type PrecheckContext, type SourceProgress, type SourceResult, type SyncSource, type TreeStats, type ChangeStats } from './source.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export class LocalSource implements SyncSource {
  readonly type = 'local' as const;
  constructor(readonly uri: string) {}

  /**
   * Compare the source with the current snapshot, read-only, stopping at the
   * first difference: a no-op sync then costs one walk instead of a clone, a
   * walk and a discard, and a sync with changes finds one within a few
   * entries.
   */
  async precheck(ctx: PrecheckContext): Promise<boolean> {
    if (ctx.current === undefined) return false;
    return !(await treesDiffer(this.uri, ctx.current));
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    await requireSourceDir(ctx.repo, this.uri);
    await ctx.beginWriting();
    return syncTree(this.uri, ctx.target, {
      repo: ctx.repo,
      excludeTop: ctx.excludeTop,
      link: false,
      // Upstream may belong to someone else: never follow what they can swap.
      reader: anchoredReader,
      midway: () => failpoint('fill-midway'),
      ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
    });
  }
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
  onProgress?: (p: SourceProgress) => void;
  /** Awaited once, right after the first change is in place (a failpoint). */
  midway?: () => Promise<void>;
  /** How the source tree is read (default: by path, for trees reposnap made). */
  reader?: SourceReader;
}

/**
 * Make the tree at `dst` equal to the tree at `src`. `src` is read with
 * `opts.reader`: by path for trees reposnap made, anchored to descriptors
 * for a tree someone else controls (see tree/source-reader.ts).
 */
export async function syncTree(src: string, dst: string, opts: SyncTreeOptions): Promise<SourceResult> {
  const reader = opts.reader ?? trustedReader;
  if (opts.link && !reader.byPath) throw new ReposnapError('EINTERNAL', 'syncTree: linking needs a reader by path');
  const limiter = new Limiter(FS_CONCURRENCY);
  const changes: ChangeStats = emptyChanges();
  const tree: TreeStats = { files: 0, bytes: 0 };
  const progress: SourceProgress = { scanned: 0, changed: 0 };
  const exclude = new Set(opts.excludeTop);
  let midway = opts.midway;

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
        if (opts.link) {
          await fs.link(sDir.path(name), tmp);
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
      changes.bytesTransferred += sst.size;
      note(dst ? 'updated' : 'added');
    } else if (sst.isSymbolicLink()) {
      tree.files++;
      const target = await sDir.readlink(name).catch((err: unknown) => fail('read link', shown, err));
      if (dst?.isSymbolicLink()) {
        const old = await fs.readlink(d, { encoding: 'buffer' });
        if (old.equals(target) && sameOwner(sst, dst)) return;
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

  const syncDir = async (sDir: SourceDir, d: BPath, sst: Stats, top: boolean): Promise<void> => {
    const [sNames, dEntries] = await Promise.all([
      limiter.run(() => sDir.names()).catch((err: unknown) => fail('read directory', sDir.shown, err)),
      limiter.run(() => fs.readdir(d, { withFileTypes: true, encoding: 'buffer' })),
    ]);
    const dNames = new Map<string, BPath>();
    for (const e of dEntries) {
      const key = e.name.toString('latin1');
      if (top && exclude.has(e.name.toString())) continue;
      dNames.set(key, e.name);
    }
    const work: Array<Promise<void>> = [];
    const subdirs: Array<{ name: BPath; dp: BPath; st: Stats }> = [];
    for (const name of sNames) {
      const key = name.toString('latin1');
      if (top && exclude.has(name.toString())) continue;
      const present = dNames.has(key);
      dNames.delete(key);
      const dp = bjoin(d, name);
      work.push(
        (async () => {
          const [sst2, dst2] = await limiter.run(() =>
            Promise.all([
              sDir.lstat(name).catch((err: unknown) => fail('read', bjoin(sDir.shown, name), err)),
              present ? fs.lstat(dp) : Promise.resolve(undefined),
            ]),
          );
          progress.scanned++;
          if (sst2.isDirectory()) {
            let existing = dst2?.isDirectory() ?? false;
            if (dst2 && !existing) {
              await fs.rm(dp, { recursive: true, force: true });
              note('deleted');
            }
            if (!existing) {
              await limiter.run(() => fs.mkdir(dp, { mode: 0o700 }));
              note('added');
              existing = true;
            } else if (dst2 && !sameOwnerMode(sst2, dst2)) {
              note('updated');
            }
            subdirs.push({ name, dp, st: sst2 });
          } else {
            await limiter.run(() => syncEntry(sDir, name, dp, d, sst2, dst2));
          }
        })(),
      );
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
      const sub = await sDir.openDir(x.name, x.st).catch((err: unknown) => fail('read directory', bjoin(sDir.shown, x.name), err));
      try {
        await syncDir(sub, x.dp, x.st, false);
      } finally {
        await sub.close();
      }
    });
    // Directories are private to the target (never shared with a snapshot),
    // so their attributes are set in place, after their contents.
    await limiter.run(() => copyAttributes(d, sst));
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
    await root.dir.close();
  }
  return { changed: progress.changed > 0, changes, tree };
}

/**
 * Whether syncTree(src, dst) with the quick check would change anything,
 * found without writing and stopping at the first difference. It judges
 * entries exactly as syncTree does (directory times and sizes do not count,
 * symlinks by target and owner). Anything it cannot read, and any special
 * file, counts as a difference: the fill that follows then does the work
 * and reports it.
 *
 * One directory at a time with synchronous calls, as rsync walks: on a
 * cached tree that is 2.5 times faster than the same walk through the
 * thread pool (1.4 s against 3.4 s for 121k files), and a cold one is read
 * in order. It yields to the event loop every few milliseconds.
 */
export async function treesDiffer(src: string, dst: string, opts: { excludeTop?: string[] } = {}): Promise<boolean> {
  let lastYield = performance.now();
  const exclude = new Set((opts.excludeTop ?? []).map((n) => Buffer.from(n).toString('latin1')));
  const sameEntry = (s: BPath, d: BPath, a: Stats, b: Stats): boolean => {
    if (a.isDirectory()) return b.isDirectory() && sameOwnerMode(a, b);
    if (a.isFile()) return b.isFile() && sameFile(a, b);
    if (a.isSymbolicLink()) {
      if (!b.isSymbolicLink() || !sameOwner(a, b)) return false;
      return readlinkSync(s, { encoding: 'buffer' }).equals(readlinkSync(d, { encoding: 'buffer' }));
    }
    return false; // a special file: syncTree refuses it
  };
  const differs = async (s: BPath, d: BPath, top: boolean): Promise<boolean> => {
    if (performance.now() - lastYield > 10) {
      await new Promise((r) => setImmediate(r));
      lastYield = performance.now();
    }
    const kept = (n: Buffer): boolean => !top || !exclude.has(n.toString('latin1'));
    const sNames = readdirSync(s, { encoding: 'buffer' }).filter(kept);
    const dNames = readdirSync(d, { encoding: 'buffer' }).filter(kept);
    if (sNames.length !== dNames.length) return true;
    const present = new Set(dNames.map((n) => n.toString('latin1')));
    const subdirs: Array<[BPath, BPath]> = [];
    for (const name of sNames) {
      if (!present.has(name.toString('latin1'))) return true;
      const sp = bjoin(s, name);
      const dp = bjoin(d, name);
      const a = lstatSync(sp);
      if (!sameEntry(sp, dp, a, lstatSync(dp))) return true;
      if (a.isDirectory()) subdirs.push([sp, dp]);
    }
    for (const [sp, dp] of subdirs) if (await differs(sp, dp, false)) return true;
    return false;
  };
  try {
    const [rootSrc, rootDst] = [statSync(src), lstatSync(dst)];
    if (!rootSrc.isDirectory() || !rootDst.isDirectory() || !sameOwnerMode(rootSrc, rootDst)) return true;
    return await differs(bpath(src), bpath(dst), true);
  } catch {
    return true;
  }
}

/**
 * Unchanged as far as a quick check can tell: size, mtime, mode, owner.
 * Times are compared to within a millisecond: utimes() takes seconds as a
 * double, so a time we copied can come back a few hundred nanoseconds off.
 * (rsync's own quick check is coarser still: whole seconds.)
 */
function sameFile(a: Stats, b: Stats): boolean {
  return a.size === b.size && Math.abs(a.mtimeMs - b.mtimeMs) < 1 && sameOwnerMode(a, b);
}

/** Whether two files hold the same bytes (their sizes are known to be equal). */
async function sameBytes(a: BPath, b: BPath): Promise<boolean> {
  const [fa, fb] = await Promise.all([fs.open(a, 'r'), fs.open(b, 'r')]);
  try {
    const ba = Buffer.alloc(64 * 1024);
    const bb = Buffer.alloc(64 * 1024);
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length), fb.read(bb, 0, bb.length)]);
      if (ra.bytesRead !== rb.bytesRead) return false;
      if (ra.bytesRead === 0) return true;
      if (!ba.subarray(0, ra.bytesRead).equals(bb.subarray(0, rb.bytesRead))) return false;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

function sameOwnerMode(a: Stats, b: Stats): boolean {
  return (a.mode & SNAPSHOT_MODE_BITS) === (b.mode & SNAPSHOT_MODE_BITS) && sameOwner(a, b);
}

/** Owners count only as root, the only one who can set them. */
function sameOwner(a: Stats, b: Stats): boolean {
  return !isRoot || (a.uid === b.uid && a.gid === b.gid);
}
