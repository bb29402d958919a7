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
  /** How the text compares with the base snapshot's copy at the same path; absent where it has none that reads. */
  base?: BaseDiff;
  /** About how many bytes this holds in memory. */
  weight: number;
  /**
   * The tree's bytes for good: read once the fill was over (nothing
   * writes the tree from then on), or read again then and found the
   * same. The verification then takes these bytes instead of reading the
   * file once more.
   */
  final?: boolean;
}

/**
 * A Manifest's text compared line by line with the base's copy, as the
 * verification compares them (lines trimmed, empty ones left out): sent
 * instead of the base's lines, which the verification would otherwise
 * have to hash one by one to look them up.
 */
export interface BaseDiff {
  /** inBase[i]: whether line i of the text (split at "\n", from 0) is word for word a line of the base's copy. */
  inBase: Uint8Array;
  /** The base's lines that are not in the text. */
  gone: string[];
}

/** `text` compared with the lines of the base's copy (see BaseDiff). */
function diffWithBase(text: string, baseLines: Set<string>): BaseDiff {
  const lines = text.split('\n');
  const inBase = new Uint8Array(lines.length);
  const kept = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const t = (lines[i] as string).trim();
    if (t === '' || !baseLines.has(t)) continue;
    inBase[i] = 1;
    kept.add(t);
  }
  const gone: string[] = [];
  for (const l of baseLines) if (!kept.has(l)) gone.push(l);
  return { inBase, gone };
}

/**
 * What the reading thread is asked: a batch to read, or word that the fill
 * is over, with the flags to set (one byte per read, by its `seq`) for
 * those read before it that read the same again.
 */
export type ReadAheadRequest = { kind: 'read'; root: string; baseRoot: string; paths: string[] } | { kind: 'fill-ended'; confirmed: SharedArrayBuffer };
/** What it answers for a batch: each read numbered, in the order read. */
export type ReadAheadReply = Array<{ path: string; result?: ReadAheadManifest; seq?: number }>;
/** Its answer to "the fill is over", once it has read again what it read before. */
export interface ConfirmedReply {
  confirmed: true;
}

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
    const baseLines = readBase(path.join(baseRoot, p), p);
    const base = baseLines ? diffWithBase(text, baseLines) : undefined;
    const goneLength = base ? base.gone.reduce((n, l) => n + l.length, 0) : 0;
    return { bytes, digests, text, ...(base ? { base } : {}), weight: bytes.length + text.length + (base?.inBase.length ?? 0) + goneLength };
  } catch {
    return undefined;
  }
}

/** Whether tree-relative `p` holds `bytes` now, read as readManifestAhead reads it. */
export function readsSame(root: string, p: string, bytes: Buffer): boolean {
  try {
    return readBounded(path.join(root, p)).equals(bytes);
  } catch {
    return false;
  }
}

function readBase(file: string, p: string): Set<string> | undefined {
  try {
    return manifestLines(decode(readBounded(file), p));
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
