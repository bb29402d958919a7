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
 * The work runs on the calling thread in slices of a few milliseconds, so
 * the fill's own output and signals still get through. Only gzip and plain
 * Manifests are read ahead (the other compressions run a tool on the file,
 * which the verification does anyway), and never the signed top-level one.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
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
/** A slice of work between two turns of the event loop. */
const SLICE_MS = 8;
/** As the verification's bound: nothing larger is a Manifest. */
const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

/** Whether a tree-relative path names a sub-Manifest worth reading ahead. */
export function isSubManifestPath(p: string): boolean {
  const name = p.slice(p.lastIndexOf('/') + 1);
  return p !== 'Manifest' && (name === 'Manifest' || name === 'Manifest.gz') && !p.split('/').some((part) => part.startsWith('.'));
}

export class ManifestReadAhead {
  private queue: string[] = [];
  private head = 0;
  private readonly ready = new Map<string, ReadAheadManifest>();
  private scheduled = false;
  private stopped = false;
  /** Milliseconds of work done, for the report. */
  busyMs = 0;

  /**
   * @param root the tree being filled
   * @param baseRoot the verified snapshot it was cloned from
   */
  constructor(
    private readonly root: string,
    private readonly baseRoot: string,
  ) {}

  /** Tree-relative paths the fill has just written in place (a hint: anything may be offered). */
  offer(paths: Iterable<string>): void {
    if (this.stopped) return;
    for (const p of paths) if (isSubManifestPath(p)) this.queue.push(p);
    this.schedule();
  }

  /** Paths offered and not yet read ahead. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** Stop reading ahead; what is ready stays ready. */
  stop(): void {
    this.stopped = true;
    this.queue = [];
    this.head = 0;
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

  private schedule(): void {
    if (this.scheduled || this.stopped || this.head >= this.queue.length) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.slice();
    });
  }

  private slice(): void {
    const start = performance.now();
    while (!this.stopped && this.head < this.queue.length && performance.now() - start < SLICE_MS) {
      const p = this.queue[this.head++] as string;
      const r = this.read(p);
      if (r) this.ready.set(p, r);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.busyMs += performance.now() - start;
    this.schedule();
  }

  /** One sub-Manifest read ahead, or undefined if anything about it is off (the verification will say what). */
  private read(p: string): ReadAheadManifest | undefined {
    try {
      const bytes = readRegularFile(path.join(this.root, p), (st) => {
        if (st.size > MAX_MANIFEST_BYTES) throw new Error('too large');
      });
      const digests = new Map(AHEAD_ALGORITHMS.map((a) => [a, createHash(a).update(bytes).digest('hex')]));
      const text = decompress(bytes, p);
      const baseLines = this.baseLines(p);
      return { bytes, digests, text, ...(baseLines ? { baseLines } : {}) };
    } catch {
      return undefined;
    }
  }

  private baseLines(p: string): Set<string> | undefined {
    try {
      const bytes = readRegularFile(path.join(this.baseRoot, p), (st) => {
        if (st.size > MAX_MANIFEST_BYTES) throw new Error('too large');
      });
      return manifestLines(decompress(bytes, p));
    } catch {
      return undefined;
    }
  }
}

function decompress(bytes: Buffer, p: string): string {
  const text = p.endsWith('.gz') ? gunzipSync(bytes, { maxOutputLength: MAX_MANIFEST_BYTES }) : bytes;
  return text.toString('utf8');
}
