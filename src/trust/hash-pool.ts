/**
 * Files hashed by `jobs` worker threads, in batches (one message per file
 * would cost more than hashing a small ebuild). With one job, or where the
 * worker script is not there (the sources run without a build), files are
 * hashed on the calling thread.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
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
  private queue: Pending[] = [];
  private readonly inFlight = new Map<number, Pending[]>();
  private nextId = 0;
  private closed = false;

  constructor(jobs: number) {
    const script = fileURLToPath(new URL('./hash-worker.js', import.meta.url));
    if (jobs < 2 || !existsSync(script)) return;
    for (let i = 0; i < jobs; i++) {
      const w = new Worker(script);
      w.on('message', (msg: { id: number; results: HashResult[] }) => this.done(w, msg));
      w.on('error', (err) => this.failAll(err));
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  hash(req: HashRequest): Promise<HashResult> {
    if (this.workers.length === 0) return Promise.resolve(hashFileSync(req));
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      // Hand out work once the caller's synchronous burst of requests is queued.
      if (this.queue.length === 1) queueMicrotask(() => this.dispatch());
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.failAll(new Error('hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop() as Worker;
      const batch: Pending[] = [];
      let bytes = 0;
      // Split what is queued evenly enough that every idle worker gets some.
      const share = Math.max(1, Math.min(BATCH_FILES, Math.ceil(this.queue.length / (this.idle.length + 1))));
      while (this.queue.length > 0 && batch.length < share && bytes < BATCH_BYTES) {
        const p = this.queue.shift() as Pending;
        batch.push(p);
        bytes += p.req.size;
      }
      const id = this.nextId++;
      this.inFlight.set(id, batch);
      w.postMessage({ id, batch: batch.map((p) => p.req) });
    }
  }

  private done(w: Worker, msg: { id: number; results: HashResult[] }): void {
    const batch = this.inFlight.get(msg.id) ?? [];
    this.inFlight.delete(msg.id);
    batch.forEach((p, i) => p.resolve(msg.results[i] as HashResult));
    if (this.closed) return;
    this.idle.push(w);
    this.dispatch();
  }

  private failAll(err: unknown): void {
    for (const batch of this.inFlight.values()) for (const p of batch) p.reject(err);
    this.inFlight.clear();
    for (const p of this.queue) p.reject(err);
    this.queue = [];
  }
}
