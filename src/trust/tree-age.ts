/**
 * How old upstream says a tree is, for rollback protection: the signed
 * TIMESTAMP of its top-level Manifest where the tree is verified, else
 * `metadata/timestamp.chk` (the line Gentoo's mirrors write, such as
 * "Mon, 23 Nov 2026 12:45:01 +0000"), which Portage's rsync module compares
 * the same way before it syncs.
 */
import path from 'node:path';
import { NotReadable, readRegularFile } from '../util/fs.js';
import { cleartextBody, parseTimestamp } from './manifest-format.js';

export interface TreeAge {
  time: Date;
  /** Where it was read: "Manifest TIMESTAMP" or "metadata/timestamp.chk". */
  from: string;
}

/** The TIMESTAMP of `root`'s top-level Manifest (a tree already verified, or being compared). */
export async function manifestAge(root: string): Promise<TreeAge | undefined> {
  const text = await readSmall(path.join(root, 'Manifest'));
  if (text === undefined) return undefined;
  const m = /^TIMESTAMP[ \t]+(\S+)[ \t]*$/m.exec(cleartextBody(text));
  const time = m ? parseTimestamp(m[1] as string) : undefined;
  return time ? { time, from: 'Manifest TIMESTAMP' } : undefined;
}

/** The time in `root`'s metadata/timestamp.chk, if it has a readable one. */
export async function timestampChkAge(root: string): Promise<TreeAge | undefined> {
  const text = await readSmall(path.join(root, 'metadata', 'timestamp.chk'));
  const line = text?.split('\n')[0]?.trim();
  if (!line || !/^[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/.test(line)) return undefined;
  const t = Date.parse(line);
  return Number.isNaN(t) ? undefined : { time: new Date(t), from: 'metadata/timestamp.chk' };
}

/** A small regular file's text; undefined when absent, not a regular file, or not small. */
async function readSmall(file: string): Promise<string | undefined> {
  try {
    return readRegularFile(file, (st) => {
      if (st.size > 64 * 1024 * 1024) throw new NotReadable('too large');
    }).toString('utf8');
  } catch {
    return undefined;
  }
}
