/**
 * Hashing one file of a tree for verification, the same way on the main
 * thread and in the hash workers: opened without following a final symlink
 * and without blocking (a FIFO where a file is expected must not hang the
 * sync), refused unless it is a regular file of the size the Manifest says,
 * then read once into every hash.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants as fsc, fstatSync, openSync, readSync } from 'node:fs';

export interface HashRequest {
  file: string;
  size: number;
  algorithms: string[];
}

/** Hex digests in the order of `algorithms`, or why the file could not be read as asked. */
export type HashResult = { digests: string[] } | { problem: string };

const CHUNK = 1 << 20;
let buffer: Buffer | undefined;

export function hashFileSync(req: HashRequest): HashResult {
  let fd: number;
  try {
    fd = openSync(req.file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { problem: code === 'ENOENT' ? 'missing' : code === 'ELOOP' ? 'a symlink where a file is expected' : `cannot be read (${code ?? String(err)})` };
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { problem: 'not a regular file' };
    if (st.size !== req.size) return { problem: `size ${st.size}, the Manifest says ${req.size}` };
    const hashes: Hash[] = req.algorithms.map((a) => createHash(a));
    buffer ??= Buffer.allocUnsafe(CHUNK);
    let total = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, CHUNK, null);
      if (n === 0) break;
      total += n;
      const chunk = buffer.subarray(0, n);
      for (const h of hashes) h.update(chunk);
    }
    // The file grew or shrank while being read: not the file that was stat'ed.
    if (total !== req.size) return { problem: `size changed while being read` };
    return { digests: hashes.map((h) => h.digest('hex')) };
  } catch (err) {
    return { problem: `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  } finally {
    closeSync(fd);
  }
}
