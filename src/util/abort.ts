/**
 * Stopping a sync part way, by the AbortSignal its caller gave it
 * (SyncOptions.signal). The signal travels with the sync's async context,
 * so that what the sync runs deep down sees it without every call passing
 * it on:
 *
 * - child processes started on the sync's behalf (rsync, git, gpg, cp, xz,
 *   zstd, a sync-verify-command, hooks, the sync-user worker: everything
 *   children.ts tracks) and still running when it aborts are stopped:
 *   SIGTERM first (rsync removes its temporary file, git its lock files),
 *   SIGKILL if one is still there after a grace period; and the sync waits
 *   for every one of them to be gone before it rejects: until its output
 *   is closed, so that the processes it forked and that share its output
 *   (rsync's generator and receiver, which remove its temporary file on
 *   their way out) are gone too;
 * - downloads end (their fetch gets the signal), tree walks stop at their
 *   next folder, and a failpoint stops waiting.
 *
 * Children started after the abort are not stopped: they are the cleanup
 * of what a stopped step left (removing an unpacked archive...). Work that
 * must not be cut short (the commit) runs `uninterruptible`: it sees the
 * signal, but its children are left to finish.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ChildProcess } from 'node:child_process';

/** How long a child told to stop with SIGTERM has before it gets SIGKILL. */
export const STOP_GRACE_MS = 5000;

/** The children of one abortable run: those to stop, and all of them to wait for. */
class ScopeChildren {
  private readonly exits = new Map<ChildProcess, Promise<void>>();
  private readonly stoppable = new Map<ChildProcess, boolean>();

  constructor(signal: AbortSignal) {
    signal.addEventListener('abort', () => this.stopAll(), { once: true });
  }

  add(child: ChildProcess, group: boolean, stoppable: boolean): void {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => {
      const done = (): void => {
        this.exits.delete(child);
        this.stoppable.delete(child);
        resolve();
      };
      child.once('close', done);
      child.once('error', done);
    });
    this.exits.set(child, exited);
    if (stoppable) this.stoppable.set(child, group);
  }

  private stopAll(): void {
    const stopping = [...this.stoppable];
    this.stoppable.clear();
    if (stopping.length === 0) return;
    for (const [child, group] of stopping) signal(child, group, 'SIGTERM');
    setTimeout(() => {
      for (const [child, group] of stopping) if (child.exitCode === null && child.signalCode === null) signal(child, group, 'SIGKILL');
    }, STOP_GRACE_MS).unref();
  }

  /** Resolves once every child started in the run has exited. */
  async settled(): Promise<void> {
    while (this.exits.size > 0) await Promise.all(this.exits.values());
  }
}

function signal(child: ChildProcess, group: boolean, sig: NodeJS.Signals): void {
  try {
    if (group && child.pid !== undefined) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    // Gone already.
  }
}

interface Scope {
  signal: AbortSignal;
  children: ScopeChildren;
  /** Whether children started here are stopped on abort (not inside `uninterruptible`). */
  stops: boolean;
}

// Undefined inside `detached` (AsyncLocalStorage.exit is still marked experimental).
const scopes = new AsyncLocalStorage<Scope | undefined>();

/**
 * Run `fn` so that `signal` reaches what it runs (see the top of this
 * file). When it fails after the signal aborted, every child it started is
 * gone before the failure is passed on.
 */
export async function abortable<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { signal, children: new ScopeChildren(signal), stops: true };
  try {
    return await scopes.run(scope, fn);
  } catch (err) {
    if (signal.aborted) await scope.children.settled();
    throw err;
  }
}

/** Run `fn` so that an abort does not stop the children it starts (it still sees the signal). */
export function uninterruptible<T>(fn: () => Promise<T>): Promise<T> {
  const scope = scopes.getStore();
  return scope ? scopes.run({ ...scope, stops: false }, fn) : fn();
}

/** Run `fn` outside any abortable run: what it starts is nobody's to stop (a probe whose answer is kept). */
export function detached<T>(fn: () => Promise<T>): Promise<T> {
  return scopes.run(undefined, fn);
}

/** The signal of the abortable run this is part of, if any. */
export function abortSignal(): AbortSignal | undefined {
  return scopes.getStore()?.signal;
}

/** Whether the abortable run this is part of was aborted. */
export function aborted(): boolean {
  return scopes.getStore()?.signal.aborted === true;
}

/** Make `child` part of the abortable run this is part of (children.ts calls it for every child). */
export function adoptChild(child: ChildProcess, group: boolean): void {
  const scope = scopes.getStore();
  if (scope) scope.children.add(child, group, scope.stops && !scope.signal.aborted);
}

/** `timeoutMs` as a signal, aborted early when the run this is part of aborts (for fetch). */
export function timeoutSignal(timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  const run = abortSignal();
  return run ? AbortSignal.any([run, timeout]) : timeout;
}
