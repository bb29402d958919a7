/**
 * Files hashed by `jobs` worker threads, in batches (one message per file
 * would cost more than hashing a small ebuild). With one job, or where the
 * worker script is not there (the sources run without a build), files are
 * hashed on the calling thread. A thread that cannot be had (a limit on
 * tasks, say) or that fails or ends leaves its work to the others, and
 * without any to the calling thread: a request is always answered.
 */
import type { Worker } from 'node:worker_threads';
import { startHelperThread } from '../util/helper-thread.js';
import { hashFileSync, type HashRequest, type HashResult } from './hash-file.js';

const BATCH_FILES = 64;
const BATCH_BYTES = 4 << 20;

interface Pending {
  req: HashRequest;
  resolve: (r: HashResult) => void;
  reject: (err: unknown) => void;
}

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
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
      this.idle.push(w);
    }
  }

  hash(req: HashRequest): Promise<HashResult> {
    if (this.workers.length === 0) return Promise.resolve(hashFileSync(req));
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      // Hand out full batches at once; a partial one after the caller's
      // current burst of work (setImmediate), so that it has had the chance
      // to queue more: one message per file would cost more than the hashing.
      if (this.waiting >= BATCH_FILES * this.idle.length) this.dispatch();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.dispatch();
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

  private dispatch(): void {
    while (this.idle.length > 0 && this.waiting > 0) {
      const w = this.idle.pop() as Worker;
      const batch: Pending[] = [];
      let bytes = 0;
      // Split what is queued evenly enough that every idle worker gets some.
      const share = Math.max(1, Math.min(BATCH_FILES, Math.ceil(this.waiting / (this.idle.length + 1))));
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
      w.postMessage({ id, batch: batch.map((p) => p.req) });
    }
  }

  private done(w: Worker, msg: { id: number; results: HashResult[] }): void {
    const batch = this.inFlight.get(msg.id)?.batch ?? [];
    this.inFlight.delete(msg.id);
    batch.forEach((p, i) => p.resolve(msg.results[i] as HashResult));
    if (this.closed) return;
    this.idle.push(w);
    this.dispatch();
  }

  /** A thread that failed or ended: what it had in hand goes back to the front of the queue. */
  private lost(w: Worker): void {
    if (this.closed || !this.workers.includes(w)) return;
    this.workers.splice(this.workers.indexOf(w), 1);
    if (this.idle.includes(w)) this.idle.splice(this.idle.indexOf(w), 1);
    for (const [id, { worker, batch }] of this.inFlight) {
      if (worker !== w) continue;
      this.inFlight.delete(id);
      this.queue.splice(this.head, 0, ...batch);
    }
    if (this.workers.length > 0) {
      this.dispatch();
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
