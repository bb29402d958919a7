/**
 * The one naming scheme for temporaries: every file or directory reposnap
 * (or a source working for it) creates under a name it will rename away
 * from is called
 *
 *   .<name>.reposnap-<tag>-<pid>-<8 hex digits>
 *
 * beside the name it will become. The writer's pid is in the name, so a
 * sweep can tell a dead writer's leftover (removed) from a live writer's
 * work in progress (kept), whatever wrote it: the store's own files, a
 * location symlink, a file a fill writes into staging (local, git, tarball),
 * a download's bookkeeping. <name> is cut to 96 bytes so that the temporary
 * of a long file name still fits in NAME_MAX.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';

const MAX_NAME_BYTES = 96;
const PATTERN = /^\..*\.reposnap-([a-z]+)-(\d+)-[0-9a-f]{8}$/s;

function suffix(tag: string): string {
  return `.reposnap-${tag}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** A temporary beside `target` (a path string) that no other writer uses. */
export function tempName(target: string, tag = 'tmp'): string {
  let base = path.basename(target);
  while (Buffer.byteLength(base) > MAX_NAME_BYTES) base = base.slice(0, -1);
  return path.join(path.dirname(target), `.${base}${suffix(tag)}`);
}

/**
 * The same for a path held as bytes (names that are not UTF-8): `dir` is the
 * directory, `name` the final name's bytes.
 */
export function tempNameBytes(dir: Buffer, name: Buffer, tag = 'tmp'): Buffer {
  return Buffer.concat([dir, Buffer.from('/.'), name.subarray(0, MAX_NAME_BYTES), Buffer.from(suffix(tag))]);
}

/** The pid of the writer of a temporary name, or undefined for any other name. */
export function temporaryWriter(name: string | Buffer): number | undefined {
  const m = PATTERN.exec(typeof name === 'string' ? name : name.toString('latin1'));
  return m ? Number(m[2]) : undefined;
}

/** Whether a process with this pid exists (one we may not signal counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}
