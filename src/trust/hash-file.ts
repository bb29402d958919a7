/**
 * Hashing one file of a tree for verification, the same way on the main
 * thread and in the hash workers: opened without following a final symlink
 * and without blocking (a FIFO where a file is expected must not hang the
 * sync: its read fails with EAGAIN), read once into every hash, and refused
 * unless exactly the size the Manifest says was read. Small files cost one
 * open, one read and one close.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants as fsc, openSync, readSync } from 'node:fs';

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
    // No fstat: the walk that found the file said it is a regular file of
    // this size, and what is read is checked against the size anyway: a
    // file that grew, shrank or was swapped for something endless is read
    // at most one byte past the size and fails.
    const hashes: Hash[] = req.algorithms.map((a) => createHash(a));
    buffer ??= Buffer.allocUnsafe(CHUNK);
    let total = 0;
    for (;;) {
      const want = Math.min(CHUNK, req.size + 1 - total);
      const n = readSync(fd, buffer, 0, want, null);
      total += n;
      if (n > 0 && total <= req.size) {
        const chunk = buffer.subarray(0, n);
        for (const h of hashes) h.update(chunk);
      }
      // A regular file gives all that is asked unless it ends: a short read is its end.
      if (n < want || total > req.size) break;
    }
    if (total !== req.size) return { problem: total > req.size ? `size mismatch: more than the ${req.size} bytes the Manifest says` : `size mismatch: ${total} bytes, the Manifest says ${req.size}` };
    return { digests: hashes.map((h) => h.digest('hex')) };
  } catch (err) {
    return { problem: `cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  } finally {
    closeSync(fd);
  }
}
