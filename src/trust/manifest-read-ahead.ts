/**
 * Changed sub-Manifests read ahead while the fill is still writing the
 * tree, so that the incremental verification after it finds the slow part
 * of each one done: the bytes' digests, the decompressed text, and the
 * lines of the base snapshot's copy it is compared with.
 *
 * Nothing read ahead is trusted. The verification reads each Manifest's
 * bytes again, as it always does, and uses what was read ahead only if
 * they are the very same bytes: the digests and the text are functions of
 * those bytes, and the base's lines come from the base snapshot, which is
 * immutable. So a Manifest the fill replaced after it was read ahead, one
 * the fill never announced, or a path announced by mistake costs the work
 * again, never a wrong answer; which paths are offered is only a hint.
 *
 * The reading runs on a worker thread at the lowest CPU priority, so that
 * it takes only what the fill leaves idle: on the main thread, or at the
 * same priority, it made the fill slower by half the time it took. Without
 * the worker script (the sources run without a build) it runs on the
 * calling thread in slices of a few milliseconds. Only gzip and plain
 * Manifests are read ahead (the other compressions run a tool on the file,
 * which the verification does anyway), and never the signed top-level one.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { gunzipSync } from 'node:zlib';
import { readRegularFile } from '../util/fs.js';
import { manifestLines } from './manifest-format.js';

/** What was read ahead for one sub-Manifest. */
export interface ReadAheadManifest {
  /** The bytes read from the tree; everything below holds for these bytes only. */
  bytes: Buffer;
  /** node:crypto algorithm -> hex digest of `bytes`, for the hashes Gentoo's entries carry. */
  digests: Map<string, string>;
  /** The decompressed text. */
  text: string;
  /** The lines of the base snapshot's copy at the same path; absent where it has none that reads. */
  baseLines?: Set<string>;
}

/** The hashes computed ahead: those the Gentoo repository's Manifest entries carry (MANIFEST_HASHES). */
const AHEAD_ALGORITHMS = ['blake2b512', 'sha512'];
/** A slice of work between two turns of the event loop (on the calling thread). */
const SLICE_MS = 8;
/** Paths handed to the worker at once. */
const BATCH = 32;
/** As the verification's bound: nothing larger is a Manifest. */
const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

/** Whether a tree-relative path names a sub-Manifest worth reading ahead. */
export function isSubManifestPath(p: string): boolean {
  const name = p.slice(p.lastIndexOf('/') + 1);
  return p !== 'Manifest' && (name === 'Manifest' || name === 'Manifest.gz') && !p.split('/').some((part) => part.startsWith('.'));
}

/** A batch for the worker, and what it answers. */
export interface ReadAheadRequest {
  root: string;
  baseRoot: string;
  paths: string[];
}
export type ReadAheadReply = Array<{ path: string; result?: ReadAheadManifest }>;

export class ManifestReadAhead {
  private queue: string[] = [];
  private head = 0;
  private readonly ready = new Map<string, ReadAheadManifest>();
  private scheduled = false;
  private stopped = false;
  private worker: Worker | undefined;
  /** A batch is with the worker. */
  private busy = false;

  /**
   * @param root the tree being filled
   * @param baseRoot the verified snapshot it was cloned from
   */
  constructor(
    private readonly root: string,
    private readonly baseRoot: string,
  ) {
    // Started now, so that it is up by the time the fill writes the first Manifests.
    this.startWorker();
  }

  /** Tree-relative paths the fill has just written in place (a hint: anything may be offered). */
  offer(paths: Iterable<string>): void {
    if (this.stopped) return;
    for (const p of paths) if (isSubManifestPath(p)) this.queue.push(p);
    this.next();
  }

  /** Paths offered and not yet read ahead (a batch with the worker counts as one). */
  get waiting(): number {
    return this.queue.length - this.head + (this.busy ? 1 : 0);
  }

  /** Stop reading ahead; what is ready stays ready. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.head = 0;
    this.busy = false;
    void this.worker?.terminate();
    this.worker = undefined;
  }

  /** What was read ahead for tree-relative path `p`, handed out once. */
  take(p: string): ReadAheadManifest | undefined {
    const r = this.ready.get(p);
    if (r) this.ready.delete(p);
    return r;
  }

  /** Let go of everything. */
  clear(): void {
    this.stop();
    this.ready.clear();
  }

  private next(): void {
    if (this.stopped || this.head >= this.queue.length) return;
    const worker = this.worker;
    if (!worker) {
      this.schedule();
      return;
    }
    if (this.busy) return;
    const paths = this.queue.slice(this.head, this.head + BATCH);
    this.head += paths.length;
    this.compact();
    this.busy = true;
    worker.postMessage({ root: this.root, baseRoot: this.baseRoot, paths } satisfies ReadAheadRequest);
  }

  private startWorker(): Worker | undefined {
    const script = fileURLToPath(new URL('./manifest-read-ahead-worker.js', import.meta.url));
    if (!existsSync(script)) return undefined;
    const worker = new Worker(script);
    // Nothing waits for it: a sync that ends first just stops it.
    worker.unref();
    worker.on('message', (reply: ReadAheadReply) => {
      if (this.worker !== worker) return;
      for (const { path: p, result } of reply) if (result) this.ready.set(p, fromWorker(result));
      this.busy = false;
      this.next();
    });
    // A worker that fails reads nothing more ahead; the verification reads for itself.
    worker.on('error', () => {
      if (this.worker === worker) this.stop();
    });
    this.worker = worker;
    return worker;
  }

  /** Without a worker: on this thread, a slice at a time. */
  private schedule(): void {
    if (this.scheduled || this.stopped || this.head >= this.queue.length) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const start = performance.now();
      while (!this.stopped && this.head < this.queue.length && performance.now() - start < SLICE_MS) {
        const p = this.queue[this.head++] as string;
        const r = readManifestAhead(this.root, this.baseRoot, p);
        if (r) this.ready.set(p, r);
      }
      this.compact();
      this.schedule();
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

/** One sub-Manifest read ahead, or undefined if anything about it is off (the verification will say what). */
export function readManifestAhead(root: string, baseRoot: string, p: string): ReadAheadManifest | undefined {
  try {
    const bytes = readBounded(path.join(root, p));
    const digests = new Map(AHEAD_ALGORITHMS.map((a) => [a, createHash(a).update(bytes).digest('hex')]));
    const text = decompress(bytes, p);
    const baseLines = readBaseLines(path.join(baseRoot, p), p);
    return { bytes, digests, text, ...(baseLines ? { baseLines } : {}) };
  } catch {
    return undefined;
  }
}

function readBaseLines(file: string, p: string): Set<string> | undefined {
  try {
    return manifestLines(decompress(readBounded(file), p));
  } catch {
    return undefined;
  }
}

function readBounded(file: string): Buffer {
  return readRegularFile(file, (st) => {
    if (st.size > MAX_MANIFEST_BYTES) throw new Error('too large');
  });
}

function decompress(bytes: Buffer, p: string): string {
  const text = p.endsWith('.gz') ? gunzipSync(bytes, { maxOutputLength: MAX_MANIFEST_BYTES }) : bytes;
  return text.toString('utf8');
}
