/**
 * Child processes (rsync...) that must not outlive an interrupted reposnap:
 * an orphaned rsync would go on writing into a staging tree that the next
 * sync may take over.
 */
import type { ChildProcess } from 'node:child_process';

const children = new Set<ChildProcess>();

export function trackChild(child: ChildProcess): void {
  children.add(child);
  child.once('exit', () => children.delete(child));
}

export function signalChildren(signal: NodeJS.Signals): void {
  for (const child of children) child.kill(signal);
}
