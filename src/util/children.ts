/**
 * Child processes (rsync...) that must not outlive an interrupted reposnap:
 * an orphaned rsync would go on writing into a staging tree that the next
 * sync may take over. A child started by an abortable sync is also that
 * sync's to stop and wait for (abort.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { adoptChild } from './abort.js';

const children = new Set<ChildProcess>();

/** Track `child`; `group`: it leads a process group of its own (ProcessOptions.ownGroup). */
export function trackChild(child: ChildProcess, opts: { group?: boolean } = {}): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
  adoptChild(child, opts.group === true);
}

export function signalChildren(signal: NodeJS.Signals): void {
  for (const child of children) child.kill(signal);
}

let pdeathsig: Promise<boolean> | undefined;

/**
 * Whether util-linux setpriv can give a child a parent-death signal. With
 * it, a reposnap killed with SIGKILL takes its rsync or cp down too; without
 * it, the orphan goes on writing into a staging tree the next sync may
 * take over or delete.
 */
export function canUsePdeathsig(): Promise<boolean> {
  pdeathsig ??= new Promise((resolve) => {
    const probe = spawn('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
    probe.on('error', () => resolve(false));
    probe.on('close', (code) => resolve(code === 0));
  });
  return pdeathsig;
}

/** `cmd args` prefixed so that the child gets `signal` when reposnap dies (where setpriv can). */
export async function dyingWithUs(signal: 'TERM' | 'KILL', cmd: string, args: string[]): Promise<[string, string[]]> {
  return (await canUsePdeathsig()) ? ['setpriv', ['--pdeathsig', signal, '--', cmd, ...args]] : [cmd, args];
}
