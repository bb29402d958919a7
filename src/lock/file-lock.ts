/**
 * Kernel file locks (Linux OFD locks through fs-native-extensions).
 *
 * Why OFD locks and not lock files or flock(2):
 * - the kernel drops the lock when the holder's last file descriptor closes,
 *   so a process killed with SIGKILL never leaves a stale lock and nobody has
 *   to guess staleness from pids or ages;
 * - OFD locks belong to the open file description, not the process, so two
 *   locks on the same file inside one process conflict as they would between
 *   processes (plain POSIX fcntl locks would silently merge them).
 *
 * The kernel does not say who holds an OFD lock, so an exclusive holder writes
 * `{"pid", "operation", "since"}` into the lock file after taking it; a
 * process that finds the lock busy reads that to name the holder. Shared
 * holders (readers) do not write.
 *
 * Lock files are created 0644: readers that are not root can open them for
 * reading, which is all a shared lock needs, and nobody else can write them.
 * Node opens every file with O_CLOEXEC, so children never inherit a lock's
 * descriptor unless it is passed on explicitly.
 *
 * A lock file can be removed while someone waits on it (a staging tree's
 * when it is committed, the whole store's on revert): a lock taken then
 * locks nothing anyone else can find. So a lock is checked, once held, to
 * be the file at its path still: if the path now names another file, the
 * lock is taken again there; if the path is gone, acquire fails with an
 * ENOENT error for the caller to explain.
 */
import fsx from 'fs-native-extensions';
import { spawn } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { BusyError, errnoCode, type LockHolder } from '../errors.js';
import { dyingWithUs, trackChild } from '../util/children.js';

export type LockMode = 'exclusive' | 'shared';

export interface LockOptions {
  mode?: LockMode;
  /** Wait for the lock (default) or fail with BusyError at once. */
  wait?: boolean;
  /** What the holder is doing, recorded for whoever finds the lock busy. */
  operation?: string;
  /** The message of the BusyError, given the holder. */
  busyMessage?: (holder: LockHolder | undefined) => string;
  /** Called once, with the holder, when the lock is busy and this is about to wait for it. */
  onWait?: (holder: LockHolder | undefined) => void;
  /** Stop waiting when this aborts (throwing its reason); see waitAbortably. */
  signal?: AbortSignal;
}

export class FileLock {
  private released = false;

  private constructor(
    readonly path: string,
    readonly mode: LockMode,
    private readonly fh: fs.FileHandle,
  ) {}

  /** The descriptor holding the lock (a child that inherits it shares the lock). */
  get fd(): number {
    return this.fh.fd;
  }

  /** Take a lock on `path`, creating the file if needed. */
  static async acquire(path: string, opts: LockOptions = {}): Promise<FileLock> {
    const mode = opts.mode ?? 'exclusive';
    for (;;) {
      const fh = await openLockFile(path, mode);
      try {
        const shared = mode === 'shared';
        if (!fsx.tryLock(fh.fd, { shared })) {
          if (opts.wait === false) {
            const holder = await readHolder(path);
            const msg = opts.busyMessage?.(holder) ?? defaultBusy(path, holder);
            throw new BusyError(msg, holder);
          }
          opts.onWait?.(await readHolder(path));
          if (opts.signal) await waitAbortably(fh.fd, shared, opts.signal);
          else await fsx.waitForLock(fh.fd, { shared });
        }
        if (!(await stillAt(fh, path))) {
          await fh.close();
          continue;
        }
        const lock = new FileLock(path, mode, fh);
        if (!shared) await lock.recordHolder(opts.operation ?? 'lock');
        return lock;
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
    }
  }

  /** Try to take the lock without waiting; undefined when it is held. */
  static async tryAcquire(path: string, opts: Omit<LockOptions, 'wait'> = {}): Promise<FileLock | undefined> {
    try {
      return await FileLock.acquire(path, { ...opts, wait: false });
    } catch (err) {
      if (err instanceof BusyError) return undefined;
      throw err;
    }
  }

  /** Whether some process holds a lock on `path` that conflicts with `mode`. */
  static async isHeld(path: string, mode: LockMode = 'exclusive'): Promise<boolean> {
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(path, fsc.O_RDONLY);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
    try {
      // An exclusive probe needs write access; a read-only probe can only test
      // against writers. Reopen for writing when we can.
      if (mode === 'exclusive') {
        try {
          const rw = await fs.open(path, fsc.O_RDWR);
          await fh.close();
          fh = rw;
        } catch {
          mode = 'shared';
        }
      }
      const got = fsx.tryLock(fh.fd, { shared: mode === 'shared' });
      if (got) fsx.unlock(fh.fd);
      return !got;
    } finally {
      await fh.close();
    }
  }

  private async recordHolder(operation: string): Promise<void> {
    const info: LockHolder = { pid: process.pid, operation, since: new Date().toISOString() };
    const buf = Buffer.from(`${JSON.stringify(info)}\n`);
    await this.fh.truncate(0);
    await this.fh.write(buf, 0, buf.length, 0);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      if (this.mode === 'exclusive') await this.fh.truncate(0).catch(() => undefined);
    } finally {
      // Closing the last descriptor drops the OFD lock.
      await this.fh.close();
    }
  }
}

/** Run by the helper: wait for the lock on fd 3 (argv: the module's path, the mode). */
const WAITER = "require(process.argv[1]).waitForLockSync(3, { shared: process.argv[2] === 'shared' })";
const FSX = createRequire(import.meta.url).resolve('fs-native-extensions');

/**
 * Wait for the lock on `fd` as the kernel queues waiters, in a way that
 * `signal` can stop. The kernel's wait cannot be interrupted on one of
 * libuv's threads (that thread, and the process, would stay until the lock
 * was free), but it can in a process of its own: a helper that inherits
 * the descriptor waits, and is killed on abort. The lock it takes belongs
 * to the open file description, which is ours too, so it stays ours when
 * the helper exits. Started only when the lock is busy.
 */
async function waitAbortably(fd: number, shared: boolean, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  const [cmd, args] = await dyingWithUs('KILL', process.execPath, ['-e', WAITER, FSX, shared ? 'shared' : 'exclusive']);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', fd] });
  trackChild(child);
  const stop = (): void => void child.kill('SIGKILL');
  signal.addEventListener('abort', stop, { once: true });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    signal.throwIfAborted();
    if (code !== 0) throw new Error(`waiting for the lock failed: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`);
  } finally {
    signal.removeEventListener('abort', stop);
  }
}

/**
 * Whether the locked file is still the one at `path`: false when another
 * file took its place or the path is gone. Either way the caller opens the
 * path again: a file that alone was removed is made anew and locked; when
 * its folder is gone too (revert removed the store), that open fails with
 * ENOENT, which is the caller's answer.
 */
async function stillAt(fh: fs.FileHandle, path: string): Promise<boolean> {
  const held = await fh.stat();
  let now;
  try {
    now = await fs.stat(path);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
    return false;
  }
  return now.ino === held.ino && now.dev === held.dev;
}

async function openLockFile(path: string, mode: LockMode): Promise<fs.FileHandle> {
  try {
    return await fs.open(path, fsc.O_RDWR | fsc.O_CREAT, 0o644);
  } catch (err) {
    // A reader without write access can still take a shared lock.
    if (mode === 'shared' && (errnoCode(err) === 'EACCES' || errnoCode(err) === 'EROFS')) {
      return await fs.open(path, fsc.O_RDONLY);
    }
    throw err;
  }
}

export async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const text = await fs.readFile(path, 'utf8');
    const parsed = JSON.parse(text) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number') return undefined;
    return {
      pid: parsed.pid,
      ...(typeof parsed.operation === 'string' ? { operation: parsed.operation } : {}),
      ...(typeof parsed.since === 'string' ? { since: parsed.since } : {}),
    };
  } catch {
    return undefined;
  }
}

function defaultBusy(path: string, holder: LockHolder | undefined): string {
  return holder ? `${path} is locked by pid ${holder.pid} (${holder.operation ?? 'unknown'})` : `${path} is locked`;
}

/** Run `fn` while holding a lock. */
export async function withLock<T>(path: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await FileLock.acquire(path, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
