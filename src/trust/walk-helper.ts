/**
 * A second thread for the stats of an incremental walk (tree-walk.ts,
 * walkChangedTree): a folder stat'ed by path for every folder of the tree,
 * then every entry of each touched folder. Tens of thousands of small
 * syscalls that cost the kernel's time, not the walk's logic, and that the
 * walk waits for before anything else can start; on two cores, two threads
 * take them about 1.6 times as fast as one.
 *
 * The work is shared, not handed off: both threads take the next chunk of
 * paths from a counter in shared memory until none are left, so the walk
 * never waits for more than the chunk the helper has in hand, however slow
 * it is to start or however busy the machine. What the helper finds is
 * what the walk's own thread would find at the same moment: the same
 * functions (folder-listing.ts) on the same paths, all after the fill has
 * ended. Anything the helper could not do (an error, the thread gone) the
 * walk's thread does again itself, so an error is reported as it would be
 * without a helper.
 *
 * Without the worker script (the sources run without a build), or without
 * a thread to be had, the walk's thread does all of it.
 */
import type { Worker } from 'node:worker_threads';
import { startHelperThread } from '../util/helper-thread.js';
import { listFolderEntries, NOT_STATED, statFolder, type FolderListing } from './folder-listing.js';

/** Folders stat'ed per claim (a fraction of a millisecond's work). */
const STAT_CHUNK = 128;
/** Folders listed per claim: the walk waits at most for this many of the helper's at the end. */
const LIST_CHUNK = 4;

/**
 * A job for the helper. The paths go as one string, NUL between them (no
 * path holds one): a message of one string costs both threads far less
 * than one of tens of thousands.
 */
export type WalkHelperRequest =
  | { kind: 'stat'; paths: string; shared: SharedArrayBuffer }
  | { kind: 'list'; job: number; paths: string; claim: SharedArrayBuffer };
/** A chunk listed by the helper; `listing` absent where it failed (the walk's thread lists it again). */
export interface ListedReply {
  job: number;
  listed: Array<{ at: number; listing?: FolderListing }>;
}

/** A stat job's shared memory: [next claim, done, fine] then the ctimes and the link counts (NOT_STATED until stat'ed). */
function statViews(shared: SharedArrayBuffer, n: number): { ctl: Int32Array; ctimes: Float64Array; links: Float64Array } {
  return { ctl: new Int32Array(shared, 0, 4), ctimes: new Float64Array(shared, 16, n), links: new Float64Array(shared, 16 + 8 * n, n) };
}

/**
 * Take chunks of `paths` and stat them into `shared` until none are left.
 * On the helper (`tolerant`), a folder that cannot be stat'ed is left
 * NOT_STATED for the walk's thread; on the walk's thread the error is thrown.
 */
export function runStatJob(paths: readonly string[], shared: SharedArrayBuffer, tolerant: boolean): void {
  const n = paths.length;
  const { ctl, ctimes, links } = statViews(shared, n);
  for (;;) {
    const from = Atomics.add(ctl, 0, STAT_CHUNK);
    if (from >= n) return;
    const to = Math.min(from + STAT_CHUNK, n);
    let fine = false;
    try {
      for (let at = from; at < to; at++) {
        try {
          if (statFolder(paths[at] as string, at, ctimes, links)) fine = true;
        } catch (err) {
          if (!tolerant) throw err;
        }
      }
    } finally {
      if (fine) Atomics.store(ctl, 2, 1);
      Atomics.add(ctl, 1, to - from);
      Atomics.notify(ctl, 1);
    }
  }
}

/** Take chunks of `paths` to list until none are left, handing each chunk's listings to `done`. */
export function runListJob(paths: readonly string[], claim: SharedArrayBuffer, tolerant: boolean, done: (listed: ListedReply['listed']) => void): void {
  const ctl = new Int32Array(claim, 0, 1);
  for (;;) {
    const from = Atomics.add(ctl, 0, LIST_CHUNK);
    if (from >= paths.length) return;
    const to = Math.min(from + LIST_CHUNK, paths.length);
    const listed: ListedReply['listed'] = [];
    for (let at = from; at < to; at++) {
      try {
        listed.push({ at, listing: listFolderEntries(paths[at] as string) });
      } catch (err) {
        if (!tolerant) throw err;
        listed.push({ at });
      }
    }
    done(listed);
  }
}

export class WalkHelper {
  private worker: Worker | undefined;
  private ended: Promise<void> = Promise.resolve();
  private jobs = 0;
  /** Called on every reply, and when the thread goes (with none). */
  private onReply: ((reply?: ListedReply) => void) | undefined;

  /**
   * Starts the thread now, so that it is up by the time the walk needs it.
   * `callerTakes: false` (for tests): the calling thread takes no chunks,
   * so the thread does all it can and the calling thread what is left.
   */
  constructor(private readonly opts: { callerTakes?: boolean } = {}) {
    this.worker = startHelperThread<ListedReply>(
      new URL('./walk-helper-worker.js', import.meta.url),
      (reply) => this.onReply?.(reply),
      (worker) => {
        if (this.worker !== worker) return;
        this.worker = undefined;
        this.onReply?.();
      },
    );
  }

  /** Whether a helper thread is there to share the work with. */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /**
   * lstat each of `paths` (absolute): for each, its ctime and its link
   * count if it is a folder, 0 if it is not or is not there (lstat's
   * ENOENT and ENOTDIR); any other error is thrown. `fine`: whether a
   * ctime had a sub-second part.
   */
  async statFolders(paths: string[]): Promise<{ ctimes: Float64Array; links: Float64Array; fine: boolean }> {
    const n = paths.length;
    const shared = new SharedArrayBuffer(16 + 16 * n);
    const { ctl, ctimes, links } = statViews(shared, n);
    links.fill(NOT_STATED);
    this.worker?.postMessage({ kind: 'stat', paths: paths.join('\0'), shared } satisfies WalkHelperRequest);
    if (this.opts.callerTakes !== false) runStatJob(paths, shared, false);
    // Wait for the chunk the helper has in hand, if any; a few milliseconds' work.
    while (Atomics.load(ctl, 1) < n && this.worker) {
      Atomics.wait(ctl, 1, Atomics.load(ctl, 1), 2);
      // Let the thread's end be noticed, if it came.
      if (Atomics.load(ctl, 1) < n) await new Promise((resolve) => setImmediate(resolve));
    }
    let fine = Atomics.load(ctl, 2) === 1;
    for (let at = 0; at < n; at++) if (links[at] === NOT_STATED && statFolder(paths[at] as string, at, ctimes, links)) fine = true;
    return { ctimes, links, fine };
  }

  /**
   * listFolderEntries of each of `paths` (absolute), in order; undefined
   * where listing failed, for the caller to list again itself where it
   * needs the folder (and meet the error there, if it is still one).
   */
  async listFolders(paths: string[]): Promise<Array<FolderListing | undefined>> {
    const n = paths.length;
    const out = new Array<FolderListing | undefined>(n);
    let have = 0;
    const job = ++this.jobs;
    const tried = new Uint8Array(n);
    const take = (listed: ListedReply['listed']): void => {
      for (const { at, listing } of listed) {
        out[at] = listing;
        tried[at] = 1;
        have++;
      }
    };
    let wake: () => void = () => undefined;
    this.onReply = (reply) => {
      if (reply && reply.job !== job) return;
      if (reply) take(reply.listed);
      wake();
    };
    try {
      const claim = new SharedArrayBuffer(4);
      this.worker?.postMessage({ kind: 'list', job, paths: paths.join('\0'), claim } satisfies WalkHelperRequest);
      if (this.opts.callerTakes !== false) runListJob(paths, claim, true, take);
      // The chunk the helper has in hand, if any (or its end, if it went).
      while (have < n && this.worker) await new Promise<void>((resolve) => (wake = resolve));
    } finally {
      this.onReply = undefined;
    }
    // What the thread never got to before it went.
    for (let at = 0; at < n; at++) {
      if (tried[at]) continue;
      try {
        out[at] = listFolderEntries(paths[at] as string);
      } catch {
        // Undefined: the caller lists it again where it needs it.
      }
    }
    return out;
  }

  /** Let the thread go; resolves once it is gone (a process must not exit while a thread is being torn down). */
  close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) this.ended = worker.terminate().then(() => undefined, () => undefined);
    return this.ended;
  }
}
