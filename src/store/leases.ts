/**
 * Leases: a reader's claim on a snapshot that collection respects.
 *
 * A lease is a shared OFD lock on reposnap/leases/<N>.lock. The kernel drops
 * it when the holder's last descriptor closes, so a reader killed with
 * SIGKILL never pins a snapshot forever. Collection deletes a snapshot only
 * after taking that lock exclusively, so a leased snapshot is never deleted.
 *
 * The race between a reader resolving `latest` and collection deleting that
 * snapshot is closed by checking after locking:
 *
 *   reader                                 collector (store lock held)
 *   1. N = readlink(latest)                a. try exclusive lock on N.lock
 *   2. shared lock on N.lock (waits while     (fails if any reader holds it:
 *      a collector holds it exclusively)       N is kept)
 *   3. snapshots/N still there? yes: the   b. rename snapshots/N into trash
 *      lease holds; no: unlock, go to 1    c. unlink N.lock, unlock
 *
 * If the reader locks first, the collector's try fails and N stays. If the
 * collector locks first, the reader waits, then finds N gone at step 3 and
 * resolves again; N was not latest (latest is never collected), so it gets
 * the newer snapshot.
 */
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import { lockHolderPids } from '../lock/holders.js';
import type { StoreLayout } from './layout.js';
import { FileLock } from '../lock/file-lock.js';
import { latestId } from './snapshots.js';

export interface Lease {
  readonly id: number;
  /** Canonical path of the snapshot: what the reader should use. */
  readonly path: string;
  /** The descriptor holding the lease; a child process that inherits it keeps the lease. */
  readonly fd: number;
  release(): Promise<void>;
  /** The same as release(), for `await using lease = await repo.lease()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

class HeldLease implements Lease {
  constructor(
    readonly id: number,
    readonly path: string,
    private readonly lock: FileLock,
  ) {}
  get fd(): number {
    return this.lock.fd;
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
  release(): Promise<void> {
    return this.lock.release();
  }
}

/** Make sure snapshot `id` has a lease file readers can lock. */
export async function ensureLeaseFile(layout: StoreLayout, id: number): Promise<void> {
  await fs.mkdir(layout.leasesDir, { recursive: true, mode: 0o755 });
  const fh = await fs.open(layout.lease(id), 'a', 0o644);
  await fh.close();
}

/** Lease the current snapshot of the store. */
export async function acquireLease(layout: StoreLayout, repo: string): Promise<Lease> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const id = await latestId(layout);
    if (id === undefined) throw new ReposnapError('ESTORE', `repo ${repo} has no current snapshot (not synced yet, or its store is gone)`);
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(layout.lease(id), { mode: 'shared' });
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      // No lease file (or no leases/ directory): the snapshot was collected
      // meanwhile (resolve again), or another tool made it. Create the file
      // if we may; a reader that may not cannot lease it.
      if ((await latestId(layout)) === id) {
        try {
          await ensureLeaseFile(layout, id);
        } catch (e) {
          const code = errnoCode(e);
          if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw e;
          throw new ReposnapError('ESTORE', `repo ${repo}: snapshot ${id} has no lease file and this user cannot create one; run a sync as the store's owner`);
        }
      }
      continue;
    }
    const still = await fs
      .lstat(layout.snapshot(id))
      .then((st) => st.isDirectory())
      .catch(() => false);
    if (still) return new HeldLease(id, layout.snapshot(id), lock);
    await lock.release();
  }
  throw new ReposnapError('ESTORE', `repo ${repo}: could not lease a snapshot (they kept disappearing)`);
}

/** Whether some reader holds a lease on snapshot `id`, and which pids. */
export async function leaseHolders(layout: StoreLayout, id: number): Promise<{ leased: boolean; pids: number[] }> {
  const file = layout.lease(id);
  if (!(await FileLock.isHeld(file, 'exclusive'))) return { leased: false, pids: [] };
  return { leased: true, pids: await lockHolderPids(file) };
}
