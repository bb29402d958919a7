/**
 * What the commands about snapshots share: reading a snapshot id from the
 * command line (the store's own rule for ids), and showing a change between
 * trees as a line (`+ added`, `- removed`, `~ changed`, a folder with a
 * slash) or as JSON (diff, sync --dry-run).
 */
import { ReposnapError } from '../errors.js';
import { parseSnapshotId } from '../store/layout.js';
import { showPath } from '../tree/bytes.js';
import type { TreeChange } from '../tree/diff.js';

export function snapshotIdArg(s: string): number {
  const id = parseSnapshotId(s);
  if (id === undefined) throw new ReposnapError('EUSAGE', `"${s}" is not a snapshot id (a number, as status shows them)`);
  return id;
}

const MARK = { added: '+', removed: '-', changed: '~' } as const;

export function changeLine(c: TreeChange): string {
  return `${MARK[c.kind]} ${showPath(c.path)}${c.type === 'dir' ? '/' : ''}`;
}

export function changeJson(c: TreeChange): { kind: TreeChange['kind']; type: TreeChange['type']; path: string } {
  return { kind: c.kind, type: c.type, path: showPath(c.path) };
}
