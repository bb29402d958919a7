/**
 * Signals. By default SIGINT, SIGTERM and SIGHUP stop reposnap: children
 * (rsync) are told to stop, staging stays for the next sync to resume, and
 * the kernel drops our locks as we exit. While `exec` runs a command, signals
 * are forwarded to the command instead, and reposnap waits for it.
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { signalChildren } from '../util/children.js';

const STOPPING: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM'];

let forwardTo: ChildProcess | undefined;

export function installStopHandlers(): void {
  for (const sig of STOPPING) {
    process.on(sig, () => {
      if (forwardTo) return; // the forwarding handler deals with it
      signalChildren('SIGTERM');
      process.stderr.write(`\nreposnap: interrupted by ${sig}\n`);
      process.exit(128 + (constants.signals[sig] ?? 1));
    });
  }
}

/** Forward signals to `child` until the returned function is called. */
export function forwardSignals(child: ChildProcess): () => void {
  forwardTo = child;
  const handlers = FORWARDED.map((sig) => {
    const h = (): void => {
      child.kill(sig);
    };
    process.on(sig, h);
    return [sig, h] as const;
  });
  return () => {
    forwardTo = undefined;
    for (const [sig, h] of handlers) process.off(sig, h);
  };
}

/**
 * End this process the way `child` ended: same exit code, or the same signal
 * (with default handling restored, so our parent sees a death by signal).
 */
export function exitLike(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal === null) return code ?? 1;
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  return 128 + (constants.signals[signal] ?? 1);
}
