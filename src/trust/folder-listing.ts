/**
 * The two kinds of stat an incremental walk makes by the ten thousand (see
 * tree-walk.ts): a folder stat'ed by path, and a touched folder listed with
 * each of its entries stat'ed. Plain functions of paths, so that the walk
 * can share them out between its own thread and a helper thread
 * (walk-helper.ts) and get the same answer from either.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { errnoCode } from '../errors.js';

/** An entry's type as the folder listing gives it. */
export const EntryType = { File: 0, Dir: 1, Link: 2, Other: 3 } as const;

/**
 * A folder's entries but dot names, each (but folders) lstat'ed: the size
 * and ctime of entry i are sizes[i] and ctimes[i]; folders are not stat'ed
 * here (the walk has their stats already, or stats them itself).
 */
export interface FolderListing {
  names: string[];
  types: Uint8Array;
  sizes: Float64Array;
  ctimes: Float64Array;
}

/** List folder `dirAbs` (see FolderListing). Errors are thrown as they come. */
export function listFolderEntries(dirAbs: string): FolderListing {
  const dirents = readdirSync(dirAbs, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  const n = dirents.length;
  const listing: FolderListing = { names: new Array<string>(n), types: new Uint8Array(n), sizes: new Float64Array(n), ctimes: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const e = dirents[i] as (typeof dirents)[number];
    listing.names[i] = e.name;
    if (e.isDirectory()) {
      listing.types[i] = EntryType.Dir;
      continue;
    }
    listing.types[i] = e.isFile() ? EntryType.File : e.isSymbolicLink() ? EntryType.Link : EntryType.Other;
    const st = lstatSync(`${dirAbs}/${e.name}`);
    listing.sizes[i] = st.size;
    listing.ctimes[i] = st.ctimeMs;
  }
  return listing;
}

/**
 * What statFolder found: -1 not stat'ed yet; 0 nothing there or not a
 * folder; else the folder's link count (its ctime is then in `ctimes`).
 */
export const NOT_STATED = -1;

/** lstat folder `abs` into place `at` of `ctimes`/`links` (see NOT_STATED); whether its ctime has a sub-second part. */
export function statFolder(abs: string, at: number, ctimes: Float64Array, links: Float64Array): boolean {
  return recordFolder(lstatIfThere(abs), at, ctimes, links);
}

/** What statFolder records of a folder's stat (undefined: nothing there), however it was made. */
export function recordFolder(st: Stats | undefined, at: number, ctimes: Float64Array, links: Float64Array): boolean {
  if (!st?.isDirectory()) {
    links[at] = 0;
    return st !== undefined && st.ctimeMs % 1000 !== 0;
  }
  ctimes[at] = st.ctimeMs;
  // A folder has two links at least; whatever a filesystem says, 0 must mean "none".
  links[at] = Math.max(st.nlink, 1);
  return st.ctimeMs % 1000 !== 0;
}

/**
 * lstat, undefined where nothing is there: no entry, or a path through
 * something that is no longer a folder (the index's `a/b/c` where upstream
 * made `a/b` a file), which lstatSync's throwIfNoEntry does not cover.
 */
export function lstatIfThere(p: string): Stats | undefined {
  try {
    return lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    if (notThere(errnoCode(err))) return undefined;
    throw err;
  }
}

/** Errors of a stat that mean nothing is at the path (see lstatIfThere). */
export function notThere(code: string | undefined): boolean {
  return code === 'ENOENT' || code === 'ENOTDIR';
}
