/**
 * Signals. SIGINT, SIGTERM and SIGHUP stop reposnap. A command that can
 * stop by itself (sync, through the library's AbortSignal) is asked to:
 * its children are stopped and waited for, staging is kept for the next
 * sync to resume, its locks are released, and reposnap exits with 128 + the
 * signal's number once it has. A second signal, or one during any other
 * command, stops at once: children are told to stop, and the kernel drops
 * our locks as we exit (staging stays as well). While `exec` runs a
 * command, signals are forwarded to the command instead, and reposnap
 * waits for it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants } from 'node:os';
import { errnoCode, ReposnapError } from '../errors.js';
import { signalChildren } from '../util/children.js';
import { stderrIsJournal, writeStderr } from './log.js';

const STOPPING: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM'];

let forwardTo: ChildProcess | undefined;
/** Set while a command that stops by itself runs (see stopSignal). */
let stopping: AbortController | undefined;
let stoppedBy: NodeJS.Signals | undefined;

export function installStopHandlers(): void {
  for (const sig of STOPPING) {
    process.on(sig, () => {
      if (forwardTo) return; // the forwarding handler deals with it
      if (stopping && stoppedBy === undefined) {
        stoppedBy = sig;
        process.stderr.write(`\nreposnap: interrupted by ${sig}; stopping (${sig} again stops at once)\n`);
        stopping.abort(new Error(`interrupted by ${sig}`));
        return;
      }
      signalChildren('SIGTERM');
      // On a new line: a progress line may be half drawn.
      writeStderr('warning', `${stderrIsJournal() ? '' : '\n'}reposnap: interrupted by ${sig}`);
      process.exit(128 + (constants.signals[sig] ?? 1));
    });
  }
}

/**
 * For a command that stops by itself: the signal that SIGINT, SIGTERM or
 * SIGHUP aborts, instead of ending the process at once.
 */
export function stopSignal(): AbortSignal {
  stopping ??= new AbortController();
  return stopping.signal;
}

/** The exit status of a command that stopped by itself on a signal (128 + its number), if one did. */
export function stoppedExit(): number | undefined {
  return stoppedBy === undefined ? undefined : 128 + (constants.signals[stoppedBy] ?? 1);
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

/** A command reposnap runs on the user's behalf (exec, stamp run), and how it ended. */
export interface CommandEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Run argv[0] with signals forwarded to it, until it exits. A command that
 * cannot be started is a usage error with the shells' statuses: 127 not
 * found, 126 not executable.
 */
export async function runForwarding(argv: string[], opts: SpawnOptions): Promise<CommandEnd> {
  if (argv.length === 0) throw new ReposnapError('EUSAGE', 'no command given');
  const child = spawn(argv[0] as string, argv.slice(1), opts);
  const stop = forwardSignals(child);
  try {
    return await new Promise<CommandEnd>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  } catch (err) {
    const code = errnoCode(err);
    throw new ReposnapError('EUSAGE', `cannot run ${argv[0]}: ${code === 'ENOENT' ? 'command not found' : (code ?? String(err))}`, {
      exitCode: code === 'ENOENT' ? 127 : 126,
    });
  } finally {
    stop();
  }
}
