/**
 * Changed sub-Manifests read ahead while the fill is still writing the
 * tree, so that the incremental verification after it finds the slow part
 * of each one done: the bytes' digests, the decompressed text, and its
 * comparison with the base snapshot's copy, line by line
 * (read-manifest-ahead.ts reads one).
 *
 * Nothing read ahead is trusted beyond the bytes it was read from. The
 * verification uses what was read ahead only for the very bytes it would
 * read itself, and only if the base copies were read from its own base:
 * the digests and the text are functions of those bytes (decoded by the
 * same code, manifest-bytes.ts), and the base snapshot is immutable. It
 * reads each Manifest again and compares, unless what was read ahead is
 * final (below): read, or read again and found the same, once the fill was
 * over, when nothing writes the tree any more, so that the verification
 * would read those very bytes. So a Manifest the fill replaced after it
 * was read ahead, one the fill never announced, or a path announced by
 * mistake costs the work again, never a wrong answer; which paths are
 * offered is only a hint.
 *
 * The reading runs on a worker thread at the lowest CPU priority, so that
 * it takes only what the fill leaves idle: on the main thread, or at the
 * same priority, it made the fill slower by about as much as it saved the
 * verification. Without the worker script (the sources run without a
 * build) it runs on the calling thread in slices of a few milliseconds.
 * What is held is bounded (READY_BUDGET): past it, nothing more is read.
 * Reading goes on after the fill (endOffers), while the verification walks
 * the tree, until what was offered is read or the read-ahead is let go
 * (clear).
 *
 * Once the fill is over nothing writes the tree, so what is read from then
 * on are its bytes for good, and so are those read before that read the
 * same again then (ReadAheadManifest.final): the verification takes those
 * without reading them once more. Reading them again is this thread's
 * work, or the reading thread's, at its low priority, while the
 * verification walks; a Manifest the verification comes to before that is
 * read by the verification as before.
 */
import type { Worker } from 'node:worker_threads';
import { startHelperThread } from '../util/helper-thread.js';
import { isSubManifestPath, readManifestAhead, readsSame, type ConfirmedReply, type ReadAheadManifest, type ReadAheadReply, type ReadAheadRequest } from './read-manifest-ahead.js';

/** A slice of work between two turns of the event loop (on the calling thread). */
const SLICE_MS = 8;
/** Paths handed to the worker at once. */
const BATCH = 32;
/** Bytes held ready at most (a 1% change of the Gentoo repository holds about 50 MB). */
const READY_BUDGET = 256 * 1024 * 1024;
/** Reads the reading thread can flag as read the same again (one byte each); any past these are not. */
const CONFIRM_SLOTS = 256 * 1024;

export class ManifestReadAhead {
  private queue: string[] = [];
  private head = 0;
  /** What was read, by path, with its number on the reading thread (see CONFIRM_SLOTS). */
  private readonly ready = new Map<string, { read: ReadAheadManifest; seq?: number }>();
  /** Set by the reading thread: read number i read the same once the fill was over. */
  private readonly confirmed = new Uint8Array(new SharedArrayBuffer(CONFIRM_SLOTS));
  /** On this thread: paths read before the fill was over, to read again after (see endOffers). */
  private unconfirmed = new Set<string>();
  /** Reading again what was read before the fill was over (on either thread). */
  private confirming = false;
  private held = 0;
  private scheduled = false;
  private stopped = false;
  /** The fill is over: nothing more is offered (see endOffers). */
  private offersEnded = false;
  private worker: Worker | undefined;
  /** The worker's end, once it was told to go. */
  private ended: Promise<void> = Promise.resolve();
  /** A batch is with the worker. */
  private busy = false;
  private waiters: Array<() => void> = [];

  /**
   * @param root the tree being filled
   * @param baseRoot the verified snapshot it was cloned from
   */
  constructor(
    private readonly root: string,
    readonly baseRoot: string,
  ) {
    // Started now, so that it is up by the time the fill writes the first Manifests.
    this.startWorker();
  }

  /** Tree-relative paths the fill has just written in place (a hint: anything may be offered). */
  offer(paths: Iterable<string>): void {
    if (this.stopped || this.offersEnded) return;
    for (const p of paths) if (isSubManifestPath(p)) this.queue.push(p);
    this.next();
  }

  /**
   * Resolves once everything offered so far is read ahead, and, after
   * endOffers, what was read before it read again (or reading stopped).
   */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * The fill is over: nothing offered from now on is taken, and what was
   * offered is still read, while the verification walks the tree. The
   * fill's last part offers its Manifests as it ends: stopped there, a 1%
   * change's verification found 40 of its 1100 changed Manifests not read
   * ahead, and read and compared them itself. Reading on costs nothing
   * wrong: the tree is final, so what is read from now on is final (see
   * ReadAheadManifest.final), and what was read before is read again to
   * find out whether it is too. Call it only once the fill is over: the
   * verification takes a final Manifest's bytes without reading them.
   */
  endOffers(): void {
    if (this.offersEnded) return;
    this.offersEnded = true;
    if (this.stopped) return;
    this.confirming = true;
    if (this.worker) this.worker.postMessage({ kind: 'fill-ended', confirmed: this.confirmed.buffer as SharedArrayBuffer } satisfies ReadAheadRequest);
    else this.schedule();
  }

  /**
   * Stop reading ahead; what is ready stays ready. Resolves once the
   * worker thread is gone: a process that exits while one of its threads
   * is being terminated can crash (Node aborts), so a sync waits for it.
   */
  stop(): Promise<void> {
    this.stopped = true;
    this.queue = [];
    this.head = 0;
    this.busy = false;
    this.confirming = false;
    this.unconfirmed.clear();
    // There is one worker at most, started with the read-ahead.
    if (this.worker) this.ended = this.worker.terminate().then(() => undefined, () => undefined);
    this.worker = undefined;
    this.settle();
    return this.ended;
  }

  /** What was read ahead for tree-relative path `p`, handed out once. */
  take(p: string): ReadAheadManifest | undefined {
    const r = this.ready.get(p);
    if (!r) return undefined;
    this.ready.delete(p);
    if (!r.read.final && r.seq !== undefined && r.seq < CONFIRM_SLOTS && Atomics.load(this.confirmed, r.seq) === 1) return { ...r.read, final: true };
    return r.read;
  }

  /** Let go of everything (resolves as stop() does). */
  clear(): Promise<void> {
    this.ready.clear();
    return this.stop();
  }

  private isIdle(): boolean {
    return this.stopped || (!this.busy && !this.confirming && this.head >= this.queue.length);
  }

  private settle(): void {
    if (!this.isIdle()) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private keep(p: string, r: ReadAheadManifest, seq?: number): void {
    this.ready.set(p, seq === undefined ? { read: r } : { read: r, seq });
    this.held += r.weight;
    if (this.held > READY_BUDGET) void this.stop();
  }

  private next(): void {
    if (this.stopped || this.head >= this.queue.length) return this.settle();
    const worker = this.worker;
    if (!worker) return this.schedule();
    if (this.busy) return;
    const paths = this.queue.slice(this.head, this.head + BATCH);
    this.head += paths.length;
    this.compact();
    this.busy = true;
    worker.postMessage({ kind: 'read', root: this.root, baseRoot: this.baseRoot, paths } satisfies ReadAheadRequest);
  }

  /** Without a thread to be had, reading goes on this thread instead. */
  private startWorker(): void {
    this.worker = startHelperThread<ReadAheadReply | ConfirmedReply>(
      new URL('./manifest-read-ahead-worker.js', import.meta.url),
      (reply, worker) => {
        if (this.worker !== worker) return;
        if (!Array.isArray(reply)) {
          this.confirming = false;
          return this.settle();
        }
        this.busy = false;
        for (const { path: p, result, seq } of reply) if (result && !this.stopped) this.keep(p, fromWorker(result), seq);
        this.next();
      },
      // A worker that fails or goes reads nothing more ahead; the verification reads for itself.
      (worker) => {
        if (this.worker === worker) void this.stop();
      },
    );
  }

  /** Without a worker: on this thread, a slice at a time. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const start = performance.now();
      // First what was read before the fill was over, read again.
      while (this.confirming && !this.stopped && performance.now() - start < SLICE_MS) {
        const p = this.unconfirmed.values().next();
        if (p.done) {
          this.confirming = false;
          break;
        }
        this.unconfirmed.delete(p.value);
        const r = this.ready.get(p.value)?.read;
        if (r && readsSame(this.root, p.value, r.bytes)) r.final = true;
      }
      while (!this.confirming && !this.stopped && this.head < this.queue.length && performance.now() - start < SLICE_MS) {
        const p = this.queue[this.head++] as string;
        const r = readManifestAhead(this.root, this.baseRoot, p);
        if (!r) continue;
        if (this.offersEnded) r.final = true;
        else this.unconfirmed.add(p);
        this.keep(p, r);
      }
      this.compact();
      if (this.confirming && !this.stopped) this.schedule();
      else this.next();
    });
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/** A worker's answer as this thread gets it: the bytes come as a Uint8Array. */
function fromWorker(r: ReadAheadManifest): ReadAheadManifest {
  const b = r.bytes as Uint8Array;
  return { ...r, bytes: Buffer.from(b.buffer, b.byteOffset, b.byteLength) };
}
