/**
 * Reading one changed sub-Manifest ahead of the verification (see
 * manifest-read-ahead.ts): the same on the main thread and on the reading
 * thread. Bounded well below what the verification accepts, so that a
 * hostile mirror's huge file costs the read-ahead nothing: it is left for
 * the verification, which refuses it by its entry's size before reading.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { readRegularFile } from '../util/fs.js';
import { nodeAlgorithm } from './hash-algorithms.js';
import { inflateGzip, manifestText } from './manifest-bytes.js';
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
  /** About how many bytes this holds in memory. */
  weight: number;
}

/** A batch for the reading thread, and what it answers. */
export interface ReadAheadRequest {
  root: string;
  baseRoot: string;
  paths: string[];
}
export type ReadAheadReply = Array<{ path: string; result?: ReadAheadManifest }>;

/** The hashes computed ahead: those the Gentoo repository's Manifest entries carry (its MANIFEST_HASHES). */
const AHEAD_ALGORITHMS = ['BLAKE2B', 'SHA512'].map(nodeAlgorithm).filter((a): a is string => a !== undefined);
/**
 * Larger files, compressed or not, are not read ahead. Gentoo's largest
 * sub-Manifests are a few MiB once inflated.
 */
export const AHEAD_MAX_BYTES = 32 * 1024 * 1024;

/** Whether a tree-relative path names a sub-Manifest worth reading ahead: plain or gzip, never the signed top-level one. */
export function isSubManifestPath(p: string): boolean {
  const name = p.slice(p.lastIndexOf('/') + 1);
  return p !== 'Manifest' && (name === 'Manifest' || name === 'Manifest.gz') && !p.split('/').some((part) => part.startsWith('.'));
}

/** Tree-relative `p` read ahead, or undefined if anything about it is off (the verification will say what). */
export function readManifestAhead(root: string, baseRoot: string, p: string): ReadAheadManifest | undefined {
  try {
    const bytes = readBounded(path.join(root, p));
    const digests = new Map(AHEAD_ALGORITHMS.map((a) => [a, createHash(a).update(bytes).digest('hex')]));
    const text = decode(bytes, p);
    const base = readBase(path.join(baseRoot, p), p);
    return { bytes, digests, text, ...(base ? { baseLines: base.lines } : {}), weight: bytes.length + text.length + (base?.length ?? 0) };
  } catch {
    return undefined;
  }
}

function readBase(file: string, p: string): { lines: Set<string>; length: number } | undefined {
  try {
    const text = decode(readBounded(file), p);
    return { lines: manifestLines(text), length: text.length };
  } catch {
    return undefined;
  }
}

/** A regular file's bytes (not through a final symlink, never blocking on a FIFO), refused past the bound. */
function readBounded(file: string): Buffer {
  return readRegularFile(file, (st) => {
    if (st.size > AHEAD_MAX_BYTES) throw new Error('too large to read ahead');
  });
}

function decode(bytes: Buffer, p: string): string {
  return manifestText(p.endsWith('.gz') ? inflateGzip(bytes, AHEAD_MAX_BYTES) : bytes);
}
