/**
 * The walk of a tree that MetaManifest verification needs: what is in it,
 * and what was touched since it was cloned from a verified snapshot.
 *
 * Two walks:
 *
 * - `walkTree` lists every folder. It is what a full verification needs,
 *   and what an incremental one falls back to when it has no folder index.
 * - `walkChangedTree` lists only the folders touched since the clone. A
 *   folder's ctime moves whenever an entry is added to, removed from or
 *   renamed in it, and nothing can set it back; so a folder whose ctime is
 *   from before the clone holds exactly the entries the base snapshot's
 *   folder held at that path, and its sub-folders are the base's. The
 *   base's folders come from its folder index (recorded when it was
 *   verified, see FolderIndex), so the cost is one stat per folder and a
 *   listing of the touched ones, not a listing of every folder: on a
 *   Gentoo-sized tree (26k folders, 121k files) 60 ms instead of 800 ms.
 *
 * Names starting with "." are never part of the tree.
 */
import { lstat, lstatSync, readdirSync, realpathSync, statSync, type Dirent, type Stats } from 'node:fs';
import path from 'node:path';
import { EntryType, listFolderEntries, lstatIfThere, notThere, recordFolder, type FolderListing } from './folder-listing.js';
import { within } from './manifest-format.js';
import { WalkHelper } from './walk-helper.js';
import { fileNode, WalkNodes, type Node } from './walk-nodes.js';

export type { Node } from './walk-nodes.js';

/**
 * How much of the tree walkTree stats. "none" (full verification): nothing,
 * the folder listing gives each entry's type and reading checks the size.
 * "dirs" (a sync's incremental verification without a folder index): every
 * folder, and the files of folders changed since the clone. A file's
 * content changes only by a new file renamed over it (no source writes in
 * place, and a snapshot's files are never written in place), and that
 * changes its folder's ctime; so the files of an unchanged folder are the
 * base's. "all" (`reposnap verify`): every file, to catch a file written in
 * place after the fact.
 */
export type StatPolicy = 'none' | 'dirs' | 'all';

/**
 * The folders of a verified tree, by tree-relative path ('' is the top),
 * each parent before its children: how many entries that are not folders
 * each holds, and the names of its symlinks (which an incremental
 * verification resolves again wherever they are: what a link leads to can
 * change without its folder changing).
 */
export type FolderIndex = Map<string, { files: number; links: string[] }>;

export interface TreeWalk {
  /**
   * Every entry listed: with walkTree, the whole tree; with
   * walkChangedTree, the folders listed (touched or new), their entries,
   * and every symlink.
   */
  nodes: WalkNodes;
  /**
   * Folders not listed because they and their entries are the base's
   * (walkChangedTree): tens of thousands, so not in `nodes` as well (see
   * UNLISTED_FOLDER).
   */
  unlisted: Set<string>;
  /** The ctime before which an entry is untouched since the clone. */
  untouchedBefore: number;
  /** The tree's folder index, for the next incremental verification. */
  folders: FolderIndex;
  /** How many entries that are not folders are in folder `dir` and below it. */
  filesBelow(dir: string): number;
  /**
   * For a folder walkChangedTree listed: those of its sub-folders it did
   * not list (in `unlisted`), by name, each with its place in the base's
   * folder index (see `places`). A changed category's Manifest has a line for
   * each of its packages' folders, most of them the base's: each is then
   * found by its name, with no path made for it.
   */
  notListedIn(dir: string): ReadonlyMap<string, number> | undefined;
  /**
   * The base's folder index by place (walkChangedTree; none for walkTree):
   * a folder's place, and the path at a place, the very string the index
   * keys the folder by.
   */
  places?: IndexPlaces;
}

/** Folders of a folder index by place (TreeWalk.places): how many, a folder's place, the path at a place. */
export interface IndexPlaces {
  count: number;
  of(p: string): number | undefined;
  path(at: number): string;
}

/** For tests: `{ coldProbe: 1, coldStatMs: -1 }` takes walkChangedTree's cold-cache path on any tree. */
export interface WalkTuning {
  /** Folders stat'ed before judging; COLD_PROBE when not given. */
  coldProbe?: number;
  /** Average folder stat (ms) above which the cache counts as cold; COLD_STAT_MS when not given. */
  coldStatMs?: number;
}

/** Folders listed between two turns of the event loop, so a long walk does not stall signals and timers. */
const WALK_SLICE = 256;

/**
 * Every entry of the tree, by tree-relative path, with what verification
 * needs: type, size and ctime where stat'ed (see StatPolicy), symlinks
 * resolved (to a file inside the tree, else marked odd); and the ctime
 * before which an entry is untouched since the clone (`boundary`, given
 * whether this filesystem keeps sub-second ctimes).
 */
export async function walkTree(root: string, ignoreTop: Set<string>, policy: StatPolicy, boundary: (fineCtime: boolean) => number): Promise<TreeWalk> {
  const nodes = new WalkNodes();
  // In the order folders are taken off the stack: each after its parent.
  const folders: FolderIndex = new Map();
  const clock = new CtimeClock();
  // Sync calls: tens of thousands of small syscalls cost far less made
  // directly than as one promise each through the thread pool.
  nodes.set('', { kind: 'dir', size: 0, ctimeMs: policy === 'none' ? Infinity : clock.lstat(root).ctimeMs });
  /** Files not stat'ed yet ("dirs"): their folder, its entries, their names. */
  const unstated: Array<[string, Map<string, Node>, string]> = [];
  const pending = [''];
  for (let listed = 0; pending.length > 0; listed++) {
    if (listed % WALK_SLICE === WALK_SLICE - 1) await new Promise((resolve) => setImmediate(resolve));
    const rel = pending.pop() as string;
    const entries = nodes.folder(rel);
    listFolder(
      folders,
      rel,
      rel === '' ? root : `${root}/${rel}`,
      ignoreTop,
      (name, p, abs) => {
        entries.set(name, { kind: 'dir', size: 0, ctimeMs: policy === 'none' ? Infinity : clock.lstat(abs).ctimeMs });
        pending.push(p);
      },
      (name, abs, e) => {
        if (e.isFile()) {
          if (policy === 'all') {
            const st = clock.lstat(abs);
            entries.set(name, fileNode(st.size, st.ctimeMs));
          } else {
            entries.set(name, fileNode(-1, Infinity));
            if (policy === 'dirs') unstated.push([rel, entries, name]);
          }
        } else if (e.isSymbolicLink()) entries.set(name, resolveLink(root, abs, clock.lstat(abs).ctimeMs));
        else entries.set(name, oddNode(Infinity));
      },
    );
  }
  const untouchedBefore = boundary(clock.fine);
  for (const [dir, entries, name] of unstated) {
    if ((nodes.get(dir)?.ctimeMs ?? Infinity) < untouchedBefore) {
      (entries.get(name) as Node).ctimeMs = -Infinity;
      continue;
    }
    const st = lstatSync(path.join(root, dir, name));
    entries.set(name, fileNode(st.size, st.ctimeMs));
  }
  return { nodes, unlisted: new Set(), untouchedBefore, folders, filesBelow: filesBelow(folders), notListedIn: () => undefined };
}

/**
 * The walk of a tree cloned from the verified tree whose folder index is
 * `base`, listing only the folders touched since the clone (see the
 * header). Undefined when the tree does not fit the index (under a folder
 * that was not touched, a folder or symlink the index names is not there,
 * or the folder's link count says it holds other sub-folders): the index
 * is not this base's, and the caller walks the whole tree instead.
 */
export async function walkChangedTree(
  root: string,
  ignoreTop: Set<string>,
  base: FolderIndex,
  boundary: (fineCtime: boolean) => number,
  tuning: WalkTuning = {},
  helper?: WalkHelper,
): Promise<TreeWalk | undefined> {
  if (helper) return walkChangedTreeWith(root, ignoreTop, base, boundary, tuning, helper);
  const own = new WalkHelper();
  try {
    return await walkChangedTreeWith(root, ignoreTop, base, boundary, tuning, own);
  } finally {
    await own.close();
  }
}

async function walkChangedTreeWith(
  root: string,
  ignoreTop: Set<string>,
  base: FolderIndex,
  boundary: (fineCtime: boolean) => number,
  tuning: WalkTuning,
  helper: WalkHelper,
): Promise<TreeWalk | undefined> {
  const clock = new CtimeClock();
  // First every folder the base had, stat'ed by path: whether this
  // filesystem keeps sub-second ctimes must be known before any folder is
  // judged touched or not. Only the two numbers the walk needs are kept, in
  // arrays by the folder's place in the index: keeping tens of thousands of
  // Stats objects alive until the walk below made the garbage collector
  // copy them over and over (a third of the walk's time).
  const { place, order, records, children, parentAt, filesBelow: baseBelow, parentsFirst } = folderPlaces(base);
  // A folder listed before its parent would be no folder's sub-folder, and
  // never walked: such an index is not one walkTree made.
  if (!parentsFirst) return undefined;
  const n = order.length;
  const ctimes = new Float64Array(n);
  /** A folder's link count; 0: not a folder now. */
  const links = new Float64Array(n);
  const record = (at: number, st: Stats | undefined): void => {
    if (recordFolder(st, at, ctimes, links)) clock.fine = true;
  };
  const folderPath = (rel: string): string => (rel === '' ? root : `${root}/${rel}`);
  // One at a time while the kernel has the folders cached (a few
  // microseconds each: a thread round trip would cost more than the stat).
  // If the first ones show a cold cache, each one waits for the disk, and
  // the rest are asked for many at a time on libuv's threads, so that the
  // reads overlap: 26k folders after the cache was dropped took 1.2 s one
  // at a time and 0.6 s this way.
  const statAt = (at: number): void => record(at, lstatIfThere(folderPath(order[at] as string)));
  let next = 0;
  const probeStart = performance.now();
  const probe = tuning.coldProbe ?? COLD_PROBE;
  for (; next < order.length && next < probe; next++) statAt(next);
  const cold = next === probe && performance.now() - probeStart > probe * (tuning.coldStatMs ?? COLD_STAT_MS);
  if (cold) await statMany(order, next, folderPath, record);
  else {
    // The rest shared with the helper thread (walk-helper.ts).
    const rest = await helper.statFolders(order.slice(next).map(folderPath));
    if (rest.fine) clock.fine = true;
    for (let i = 0; i < rest.links.length; i++) {
      if ((rest.links[i] as number) <= 0) continue;
      ctimes[next + i] = rest.ctimes[i] as number;
      links[next + i] = rest.links[i] as number;
    }
  }
  const untouchedBefore = boundary(clock.fine);
  // The base's folders touched since the clone, listed now, also shared
  // with the helper: the walk below lists these (and new folders, itself).
  const touched: string[] = [];
  for (let at = 0; at < order.length; at++) if ((links[at] as number) > 0 && (ctimes[at] as number) >= untouchedBefore) touched.push(order[at] as string);
  const listings = await helper.listFolders(touched.map(folderPath));
  const listed = new Map<string, FolderListing>();
  touched.forEach((rel, i) => {
    const listing = listings[i];
    if (listing) listed.set(rel, listing);
  });

  const nodes = new WalkNodes();
  const unlisted = new Set<string>();
  const notListed = new Map<string, Map<string, number>>();
  // By place: not listed; listed, or holding a folder that was.
  const notListedAt = new Uint8Array(n);
  const listedWithin = new Uint8Array(n);
  // In the order folders are taken off the stack: each after its parent.
  const folders: FolderIndex = new Map();
  // A folder of the index that is one now goes on the stack as its place;
  // any other (new since the clone) as -1 - its place in `fresh`. Tens of
  // thousands of untouched folders then cost no lookup by path.
  const fresh: string[] = [];
  const push = (rel: string): void => {
    const at = place.get(rel);
    if (at !== undefined && (links[at] as number) > 0) pending.push(at);
    else {
      fresh.push(rel);
      pending.push(-fresh.length);
    }
  };
  const pending: number[] = [];
  push('');
  for (let visited = 0; pending.length > 0; visited++) {
    if (visited % (WALK_SLICE * 16) === WALK_SLICE * 16 - 1) await new Promise((resolve) => setImmediate(resolve));
    const item = pending.pop() as number;
    let rel: string;
    let ctimeMs: number;
    let nlink: number;
    /** Its place in the index, if it has one. */
    let at: number | undefined;
    if (item >= 0) {
      at = item;
      rel = order[at] as string;
      ctimeMs = ctimes[at] as number;
      nlink = links[at] as number;
    } else {
      rel = fresh[-item - 1] as string;
      at = place.get(rel);
      const st = clock.lstat(folderPath(rel));
      ctimeMs = st.ctimeMs;
      nlink = st.nlink;
    }
    const indexed = at === undefined ? undefined : records[at];
    if (indexed && ctimeMs < untouchedBefore) {
      // The base's entries: its sub-folders, its symlinks resolved anew.
      // Where the filesystem counts a folder's links (2 + sub-folders; not
      // btrfs, which says 1), the count must agree with the index.
      const subs = children.start[at as number] as number;
      const subsEnd = children.start[(at as number) + 1] as number;
      if (nlink !== 1 && nlink !== 2 + subsEnd - subs) return undefined;
      unlisted.add(rel);
      notListedAt[at as number] = 1;
      folders.set(rel, indexed);
      // From the last, so that they come off the stack, and into the next
      // index, in the order this one has them (see the listing below).
      for (let c = subsEnd - 1; c >= subs; c--) {
        const sub = children.list[c] as number;
        if (!((links[sub] as number) > 0)) return undefined;
        pending.push(sub);
      }
      for (const name of indexed.links) {
        const abs = `${folderPath(rel)}/${name}`;
        const link = clock.lstatIfAny(abs);
        if (!link?.isSymbolicLink()) return undefined;
        nodes.setIn(rel, name, resolveLink(root, abs, link.ctimeMs));
      }
      continue;
    }
    // Touched, or new: listed, and every entry stat'ed.
    nodes.set(rel, { kind: 'dir', size: 0, ctimeMs });
    if (at !== undefined) for (let q = at; q >= 0 && listedWithin[q] === 0; q = parentAt[q] as number) listedWithin[q] = 1;
    const dirAbs = folderPath(rel);
    const listing = listed.get(rel) ?? listFolderEntries(dirAbs);
    const folder = { files: 0, links: [] as string[] };
    folders.set(rel, folder);
    const entries = nodes.folder(rel);
    // The index has a folder's sub-folders in the reverse of the order the
    // listing gave them when it was made (a stack takes them off; those of
    // a folder not listed keep the order they had), and a clone lists a
    // folder's names in the same order: met in that order, each is found by
    // comparing one name instead of looking up its path. Out of order (a
    // folder added since), by path; one gone since is passed over.
    let sub = at === undefined ? -1 : (children.start[at + 1] as number) - 1;
    const subsStart = at === undefined ? 0 : (children.start[at] as number);
    let subsNotListed: Map<string, number> | undefined;
    for (let i = 0; i < listing.names.length; i++) {
      const name = listing.names[i] as string;
      if (rel === '' && ignoreTop.has(name)) continue;
      const type = listing.types[i];
      if (type === EntryType.Dir) {
        while (sub >= subsStart && !((links[children.list[sub] as number] as number) > 0)) sub--;
        const next = sub >= subsStart ? (children.list[sub] as number) : -1;
        if (next >= 0 && isChildNamed(order[next] as string, rel, name)) {
          pending.push(next);
          sub--;
          // Not listed when taken off the stack (see above), or the walk fails.
          if (records[next] !== undefined && (ctimes[next] as number) < untouchedBefore) {
            if (subsNotListed === undefined) notListed.set(rel, (subsNotListed = new Map()));
            subsNotListed.set(name, next);
          }
        } else push(join(rel, name));
        continue;
      }
      folder.files++;
      const ctimeMs = listing.ctimes[i] as number;
      if (type === EntryType.File) entries.set(name, fileNode(listing.sizes[i] as number, ctimeMs));
      else if (type === EntryType.Link) {
        folder.links.push(name);
        entries.set(name, resolveLink(root, `${dirAbs}/${name}`, ctimeMs));
      } else entries.set(name, oddNode(ctimeMs));
    }
  }
  // A folder not listed with none listed below it holds what the base's
  // did: counted by the base's index (a folder that did not need its
  // Manifest read is one, thousands of them). Any other: from the new
  // index, summed only if ever asked.
  const anyBelow = filesBelow(folders);
  const filesBelowDir = (dir: string): number => {
    const at = place.get(dir);
    return at !== undefined && notListedAt[at] === 1 && listedWithin[at] === 0 ? (baseBelow[at] as number) : anyBelow(dir);
  };
  return {
    nodes,
    unlisted,
    untouchedBefore,
    folders,
    filesBelow: filesBelowDir,
    notListedIn: (dir) => notListed.get(dir),
    places: { count: n, of: (p) => place.get(p), path: (at) => order[at] as string },
  };
}

/** A folder index by place: what walkChangedTree looks folders up by (see folderPlaces). */
export interface FolderPlaces {
  /** Each folder's place: its position in the index (parents first). */
  place: Map<string, number>;
  /** By place: the folder's path and its record. */
  order: string[];
  records: Array<{ files: number; links: string[] }>;
  /**
   * By place, the folder's sub-folders, as one list: those of the folder
   * at place i are list[start[i]] up to list[start[i + 1]], in the
   * index's order. A folder whose parent is not before it in the index
   * is no folder's sub-folder (see parentsFirst).
   */
  children: { start: Int32Array; list: Int32Array };
  /** By place, the folder's parent's place; -1 for the top (or a folder whose parent is not before it). */
  parentAt: Int32Array;
  /** By place, how many entries that are not folders the index has in the folder and below it. */
  filesBelow: Float64Array;
  /** Whether every folder but the top came after its parent; the walk takes no index that does not. */
  parentsFirst: boolean;
}

const placesOf = new WeakMap<FolderIndex, FolderPlaces>();

/**
 * `index` by place, worked out once per index (tens of milliseconds for a
 * Gentoo-sized one): parseFolderIndexInSlices works it out, so a sync has
 * it while the fill runs, when it reads the base's index
 * (sync/verification-prep.ts). The index must not change afterwards; a
 * parsed one never does.
 */
export function folderPlaces(index: FolderIndex): FolderPlaces {
  return atOnce(layOut(index));
}

/** Folders laid out between two turns of the event loop (a few milliseconds' work). */
const LAYOUT_SLICE = 4096;

/** What folderPlaces does, pausing (yield) every LAYOUT_SLICE folders. */
function* layOut(index: FolderIndex): Generator<void, FolderPlaces> {
  const known = placesOf.get(index);
  if (known) return known;
  const n = index.size;
  const place = new Map<string, number>();
  const order = new Array<string>(n);
  const records = new Array<{ files: number; links: string[] }>(n);
  const parentAt = new Int32Array(n);
  const start = new Int32Array(n + 1);
  let parentsFirst = true;
  let at = 0;
  for (const [rel, record] of index) {
    if (at % LAYOUT_SLICE === LAYOUT_SLICE - 1) yield;
    order[at] = rel;
    records[at] = record;
    const parent = rel === '' ? undefined : place.get(parentOf(rel) as string);
    if (rel !== '' && parent === undefined) parentsFirst = false;
    parentAt[at] = parent ?? -1;
    if (parent !== undefined) (start[parent + 1] as number)++;
    place.set(rel, at);
    at++;
  }
  for (let i = 0; i < n; i++) start[i + 1] = (start[i + 1] as number) + (start[i] as number);
  const list = new Int32Array(start[n] as number);
  const next = start.slice(0, n);
  for (let i = 0; i < n; i++) {
    const parent = parentAt[i] as number;
    if (parent >= 0) list[(next[parent] as number)++] = i;
  }
  // Summed from the last up: a folder comes after its parent.
  const below = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    below[i] = (below[i] as number) + (records[i] as { files: number }).files;
    const parent = parentAt[i] as number;
    if (parent >= 0) below[parent] = (below[parent] as number) + (below[i] as number);
  }
  const places = { place, order, records, children: { start, list }, parentAt, filesBelow: below, parentsFirst };
  placesOf.set(index, places);
  return places;
}

/** Run `steps` to the end without pausing. */
function atOnce<T>(steps: Generator<void, T>): T {
  for (let step = steps.next(); ; step = steps.next()) if (step.done) return step.value;
}

/**
 * Run `steps` to the end, letting the event loop turn at each pause: a
 * sync's thread also runs the fill's pipeline (reading rsync's plan as it
 * comes, starting its parts), which a Gentoo-sized index held up for a
 * tenth of a second when read in one go.
 */
async function inSlices<T>(steps: Generator<void, T>): Promise<T> {
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done) return step.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * The node for `p` in a folder walkChangedTree did not list (so not in its
 * nodes): a regular file, a folder or something else, as lstat says now.
 */
export function statNode(root: string, p: string): Node | undefined {
  const st = lstatIfThere(path.join(root, p));
  if (st === undefined) return undefined;
  if (st.isFile()) return fileNode(st.size, st.ctimeMs);
  if (st.isDirectory()) return { kind: 'dir', size: 0, ctimeMs: st.ctimeMs };
  if (st.isSymbolicLink()) return resolveLink(root, path.join(root, p), st.ctimeMs);
  return oddNode(st.ctimeMs);
}

/**
 * How many entries that are not folders are in `dir` and below it: by the
 * index's layout (folderPlaces, which sums them), made when first asked.
 */
function filesBelow(index: FolderIndex): (dir: string) => number {
  return (dir) => {
    const { place, filesBelow: below } = folderPlaces(index);
    const at = place.get(dir);
    return at === undefined ? 0 : (below[at] as number);
  };
}

export function serializeFolderIndex(index: FolderIndex): string {
  return `${JSON.stringify({ version: 1, folders: [...index].map(([rel, f]) => (f.links.length > 0 ? [rel, f.files, f.links] : [rel, f.files])) })}\n`;
}

/** The index serializeFolderIndex wrote; undefined for anything else (the caller then walks the whole tree). */
export function parseFolderIndex(text: string): FolderIndex | undefined {
  return atOnce(readIndex(text));
}

/** parseFolderIndex, a slice at a time, for a thread with other work meanwhile (see inSlices). */
export function parseFolderIndexInSlices(text: string): Promise<FolderIndex | undefined> {
  return inSlices(readIndex(text));
}

/** A record's links where it has none: one array for all, never changed (frozen). */
const NO_LINKS: string[] = Object.freeze([]) as unknown as string[];

/** What parseFolderIndex does, pausing (yield) every LAYOUT_SLICE folders. */
function* readIndex(text: string): Generator<void, FolderIndex | undefined> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const doc = parsed as { version?: unknown; folders?: unknown };
  if (doc.version !== 1 || !Array.isArray(doc.folders)) return undefined;
  const index: FolderIndex = new Map();
  const items = doc.folders as unknown[];
  for (let i = 0; i < items.length; i++) {
    if (i % LAYOUT_SLICE === LAYOUT_SLICE - 1) yield;
    const item = items[i];
    if (!Array.isArray(item)) return undefined;
    const [rel, files, links = NO_LINKS] = item as [unknown, unknown, unknown];
    if (typeof rel !== 'string' || !Number.isInteger(files) || !Array.isArray(links) || !links.every((l) => typeof l === 'string')) return undefined;
    index.set(rel, { files: files as number, links: links as string[] });
  }
  if (!index.has('')) return undefined;
  // Parents first, or the walk would miss a folder; laid out by place now,
  // for the walk (see folderPlaces), which is how that is checked.
  const places = yield* layOut(index);
  return places.parentsFirst ? index : undefined;
}

/**
 * List folder `rel` (at `dirAbs`) into `folders`: every entry but dot names
 * (and, at the top, `ignoreTop`); a sub-folder goes to `onFolder`, any
 * other entry to `onEntry` (by name), counted, and named in the record if
 * a symlink.
 */
function listFolder(
  folders: FolderIndex,
  rel: string,
  dirAbs: string,
  ignoreTop: Set<string>,
  onFolder: (name: string, p: string, abs: string) => void,
  onEntry: (name: string, abs: string, e: Dirent) => void,
): void {
  const folder = { files: 0, links: [] as string[] };
  folders.set(rel, folder);
  for (const e of readdirSync(dirAbs, { withFileTypes: true })) {
    const name = e.name;
    if (name.startsWith('.') || (rel === '' && ignoreTop.has(name))) continue;
    const abs = `${dirAbs}/${name}`;
    if (e.isDirectory()) {
      onFolder(name, join(rel, name), abs);
      continue;
    }
    folder.files++;
    if (e.isSymbolicLink()) folder.links.push(name);
    onEntry(name, abs, e);
  }
}

/** Folders stat'ed one at a time before the walk judges whether the cache is cold. */
const COLD_PROBE = 512;
/** A stat slower than this on average (ms) waited for the disk; a cached one takes a few microseconds. */
const COLD_STAT_MS = 0.02;
/** Stats in flight at once on a cold cache (libuv runs four at a time; more only queue). */
const COLD_CONCURRENCY = 32;

/**
 * lstat `order[from..]` (through `abs`), COLD_CONCURRENCY at a time, each
 * result (undefined where nothing is there, as lstatIfThere says)
 * handed to `record` with its place. Any other error fails the walk.
 * Exported for its tests.
 */
export function statMany(order: readonly string[], from: number, abs: (rel: string) => string, record: (at: number, st: Stats | undefined) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = from;
    let active = 0;
    let failed = false;
    const start = (): void => {
      while (!failed && active < COLD_CONCURRENCY && next < order.length) {
        const at = next++;
        active++;
        lstat(abs(order[at] as string), (err, st) => {
          active--;
          if (failed) return;
          if (err && !notThere(err.code)) {
            failed = true;
            reject(err);
            return;
          }
          record(at, err ? undefined : st);
          if (next >= order.length && active === 0) resolve();
          else start();
        });
      }
    };
    if (from >= order.length) resolve();
    else start();
  });
}

/** Whether ctimes seen so far have sub-second parts (then so does this filesystem). */
class CtimeClock {
  fine = false;
  saw(st: Stats): void {
    if (st.ctimeMs % 1000 !== 0) this.fine = true;
  }
  lstat(abs: string): Stats {
    const st = lstatSync(abs);
    this.saw(st);
    return st;
  }
  lstatIfAny(abs: string): Stats | undefined {
    const st = lstatIfThere(abs);
    if (st) this.saw(st);
    return st;
  }
}

/**
 * The node of a folder walkChangedTree did not list (in `unlisted`, not in
 * `nodes`): untouched since the clone, which is all that matters of it.
 */
export const UNLISTED_FOLDER: Node = Object.freeze({ kind: 'dir', size: 0, ctimeMs: -Infinity });

/** Whether `child` (a path of the index under `rel`) is `rel`'s entry `name`. */
function isChildNamed(child: string, rel: string, name: string): boolean {
  return child.length === (rel === '' ? 0 : rel.length + 1) + name.length && child.endsWith(name);
}

function oddNode(ctimeMs: number): Node {
  return { kind: 'other', size: 0, ctimeMs, odd: 'not a regular file, and not IGNOREd' };
}

/** GLEP 74 follows symlinks; reposnap follows them only to regular files inside the tree. */
function resolveLink(root: string, abs: string, ctimeMs: number): Node {
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    return { kind: 'other', size: 0, ctimeMs, odd: 'a dangling symlink, and not IGNOREd' };
  }
  if (!within(real, root)) return { kind: 'other', size: 0, ctimeMs, odd: 'a symlink leading out of the tree, and not IGNOREd' };
  const st = statSync(real);
  if (!st.isFile()) return { kind: 'other', size: 0, ctimeMs, odd: 'a symlink to something other than a file, and not IGNOREd' };
  // Touched if either the link or its target is.
  return { kind: 'file', size: st.size, ctimeMs: Math.max(ctimeMs, st.ctimeMs), target: real };
}

/** Entry `name` of folder `rel`, as a tree path. */
export function join(rel: string, name: string): string {
  return rel === '' ? name : `${rel}/${name}`;
}

export function parentOf(p: string): string | undefined {
  if (p === '') return undefined;
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}
