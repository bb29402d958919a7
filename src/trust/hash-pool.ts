/**
 * Files hashed by `jobs` worker threads, in batches (one message per file
 * would cost more than hashing a small ebuild). A thread is handed batches
 * ahead, while it still works on others (they wait in its own message
 * queue): the calling thread turns its event loop only every few
 * milliseconds while it reads Manifests (metamanifest.ts), and a thread
 * that got its next batch only once its answer was taken sat idle most of
 * that time. In a full verification of a Gentoo-sized tree, no file's hash
 * was taken before the last Manifest was read, and the threads hashed
 * everything after it. With one job, or where the worker script is not
 * there (the sources run without a build), files are hashed on the calling
 * thread. A thread that cannot be had (a limit on
 * tasks, say) or that fails or ends leaves its work to the others, and
 * without any to the calling thread: a request is always answered.
 */
import type { Worker } from 'node:worker_threads';
import { startHelperThread } from '../util/helper-thread.js';
import { hashFileSync, type HashRequest, type HashResult } from './hash-file.js';

const BATCH_FILES = 64;
const BATCH_BYTES = 4 << 20;
/**
 * Batches a thread is handed before it has answered the first: enough to
 * keep it busy between two turns of the calling thread's event loop (16
 * batches of small files are some 20 ms of hashing), few enough that a
 * thread slower than the others does not hold much work another could have
 * done (at worst 16 batches of BATCH_BYTES, a fraction of a second).
 */
const AHEAD = 16;

interface Pending {
  req: HashRequest;
  resolve: (r: HashResult) => void;
  reject: (err: unknown) => void;
}

export class HashPool {
  private readonly workers: Worker[] = [];
  /** Per thread, the batches it has been handed and not answered yet. */
  private readonly handed = new Map<Worker, number>();
  /** Waiting requests are queue[head..]: shift() on a 100k-entry array moves it all each time. */
  private queue: Pending[] = [];
  private head = 0;
  private readonly inFlight = new Map<number, { worker: Worker; batch: Pending[] }>();
  private nextId = 0;
  private closed = false;
  private scheduled = false;

  constructor(jobs: number) {
    if (jobs < 2) return;
    for (let i = 0; i < jobs; i++) {
      // Kept alive: the verification awaits what it has in hand; close() lets it go.
      const w = startHelperThread<{ id: number; results: HashResult[] }>(
        new URL('./hash-worker.js', import.meta.url),
        (msg, worker) => this.done(worker, msg),
        (worker) => this.lost(worker),
        { keepsAlive: true },
      );
      if (!w) break;
      this.workers.push(w);
      this.handed.set(w, 0);
    }
  }

  hash(req: HashRequest): Promise<HashResult> {
    if (this.workers.length === 0) return Promise.resolve(hashFileSync(req));
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      // A full batch goes at once, to a thread with room for it; a partial
      // one after the caller's current burst of work (setImmediate), so
      // that it has had the chance to queue more: one message per file
      // would cost more than the hashing.
      if (this.waiting >= BATCH_FILES) this.dispatch(false);
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch(true);
        });
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new Error('hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private get waiting(): number {
    return this.queue.length - this.head;
  }

  /**
   * Hand out what waits: full batches to the threads with the fewest in
   * hand, up to AHEAD each; with `partial`, also what is left, shared out
   * evenly enough that every thread with nothing in hand gets some.
   */
  private dispatch(partial: boolean): void {
    while (this.waiting > 0) {
      const w = this.leastBusy();
      if (w === undefined) return;
      const load = this.handed.get(w) as number;
      if (this.waiting < BATCH_FILES && !(partial && load === 0)) return;
      // A partial batch: shared out among the threads with nothing in hand (this one among them).
      const share = this.waiting >= BATCH_FILES ? BATCH_FILES : Math.ceil(this.waiting / this.workers.filter((x) => this.handed.get(x) === 0).length);
      const batch: Pending[] = [];
      let bytes = 0;
      while (this.waiting > 0 && batch.length < share && bytes < BATCH_BYTES) {
        const p = this.queue[this.head++] as Pending;
        batch.push(p);
        bytes += p.req.size;
      }
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      const id = this.nextId++;
      this.inFlight.set(id, { worker: w, batch });
      this.handed.set(w, load + 1);
      w.postMessage({ id, batch: batch.map((p) => p.req) });
    }
  }

  /** The thread with the fewest batches in hand, if one has room for another. */
  private leastBusy(): Worker | undefined {
    let best: Worker | undefined;
    for (const w of this.workers) {
      const load = this.handed.get(w) as number;
      if (load < AHEAD && (best === undefined || load < (this.handed.get(best) as number))) best = w;
    }
    return best;
  }

  private done(w: Worker, msg: { id: number; results: HashResult[] }): void {
    const batch = this.inFlight.get(msg.id)?.batch ?? [];
    this.inFlight.delete(msg.id);
    batch.forEach((p, i) => p.resolve(msg.results[i] as HashResult));
    if (this.closed) return;
    if (this.handed.has(w)) this.handed.set(w, Math.max(0, (this.handed.get(w) as number) - 1));
    this.dispatch(true);
  }

  /** A thread that failed or ended: what it had in hand goes back to the front of the queue. */
  private lost(w: Worker): void {
    if (this.closed || !this.workers.includes(w)) return;
    this.workers.splice(this.workers.indexOf(w), 1);
    this.handed.delete(w);
    for (const [id, { worker, batch }] of this.inFlight) {
      if (worker !== w) continue;
      this.inFlight.delete(id);
      this.queue.splice(this.head, 0, ...batch);
    }
    if (this.workers.length > 0) {
      this.dispatch(true);
      return;
    }
    // None left: the calling thread hashes what waits, as with one job.
    const waiting = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const p of waiting) {
      try {
        p.resolve(hashFileSync(p.req));
      } catch (err) {
        p.reject(err);
      }
    }
  }

  private failAll(err: unknown): void {
    for (const { batch } of this.inFlight.values()) for (const p of batch) p.reject(err);
    this.inFlight.clear();
    for (const p of this.queue.slice(this.head)) p.reject(err);
    this.queue = [];
    this.head = 0;
  }
}
