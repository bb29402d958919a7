/**
 * When two entries are the same, for every comparison reposnap makes: the
 * fill's quick check (syncTree), the precheck that asks whether a fill
 * would change anything (treesDiffer), and whether a resumed staging tree
 * still equals its base. One file, so the precheck can never call
 * "unchanged" what the fill would change.
 */
import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { SNAPSHOT_MODE_BITS } from './attributes.js';
import { bjoin, bpath, type BPath } from './bytes.js';
import { isRoot } from '../util/identity.js';

/**
 * Whether syncTree(src, dst) with the quick check would change anything,
 * found without writing and stopping at the first difference. It judges
 * entries exactly as syncTree does (directory times and sizes do not count,
 * symlinks by target, owner and time). Anything it cannot read, and any special
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
      if (!b.isSymbolicLink() || !sameOwner(a, b) || !sameTime(a, b)) return false;
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
export function sameFile(a: Stats, b: Stats): boolean {
  return a.size === b.size && sameTime(a, b) && sameOwnerMode(a, b);
}

/** The same modification time, to within a millisecond (see sameFile). */
export function sameTime(a: Stats, b: Stats): boolean {
  return Math.abs(a.mtimeMs - b.mtimeMs) < 1;
}

/** Whether two files hold the same bytes (their sizes are known to be equal). */
export async function sameBytes(a: BPath, b: BPath): Promise<boolean> {
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

export function sameOwnerMode(a: Stats, b: Stats): boolean {
  return (a.mode & SNAPSHOT_MODE_BITS) === (b.mode & SNAPSHOT_MODE_BITS) && sameOwner(a, b);
}

/** Owners count only as root, the only one who can set them. */
export function sameOwner(a: Stats, b: Stats): boolean {
  return !isRoot || (a.uid === b.uid && a.gid === b.gid);
}
