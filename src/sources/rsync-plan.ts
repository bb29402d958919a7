/**
 * What rsync says it would change, read from `--itemize-changes` output, and
 * the list of paths that makes a second rsync apply just that.
 *
 * Every rsync reposnap runs prints `%i %l %n` per item (ITEM_FORMAT): an
 * 11-character code (YXcstpoguax: Y the update type, X the file type, then
 * one letter per attribute that differs), the entry's length in bytes, and
 * the name, relative to the transfer's top, a directory's with a trailing
 * slash. The length comes before the name, which may hold anything, and is
 * one word (plain digits under --no-human-readable), so the name is still
 * all that follows the second space. rsync run with
 * LC_ALL=C escapes every byte that is not printable ASCII as `\#ooo`
 * (octal), and a backslash that would read as such an escape as `\#134`,
 * so a name always decodes back to its exact bytes, whatever it holds
 * (newlines included).
 */
import type { TreeChange } from '../tree/diff.js';
import type { ChangeStats, SourcePlan, TreeStats } from './source.js';

/**
 * rsync's out-format for every run: the item code, the length, the name
 * (no " -> target"). The length gives the bytes a fill writes, and a plan's
 * total of them.
 *
 * rsync prints a transferred file's line as it begins receiving the file
 * (a fill counts its bytes once the next one begins, or rsync ends). Not
 * %b nor %c, which would have the line printed once the file is written:
 * with them, rsync's --progress (which sync-rsync-extra-opts may add) also
 * prints each file's bare name before its transfer, a line an upstream
 * name could make look like an item.
 */
export const ITEM_FORMAT = '--out-format=%i %l %n';

export type ItemKind =
  /** Created: a new file, link or directory. */
  | 'added'
  /** Content (or link target) replaced: a new inode. */
  | 'updated'
  /** Only attributes differ (mode, owner, group, times): rsync sets them on the existing inode. */
  | 'attributes'
  /** Removed from the target. */
  | 'deleted'
  /** Only a directory's time differs: not a change of content. */
  | 'dir-time';

export interface Item {
  kind: ItemKind;
  /** rsync's type letter: f file, d directory, L symlink, D device, S special; for a deletion 'd' or '' (not a folder). */
  type: string;
  /** The path, relative to the top, without a trailing slash ("." for the top itself). */
  path: Buffer;
  /** A regular file's length in bytes (not for a deletion). */
  size?: number;
}

/** What one output line says: an item, a special file rsync skipped (--no-D), or nothing. */
export function parseLine(line: string): Item | { kind: 'special'; path: string } | undefined {
  // A deleted folder's name ends with a slash; rsync says no more of its type.
  const gone = /^\*deleting {3}\S+ (.*)$/s.exec(line);
  if (gone) return { kind: 'deleted', type: line.endsWith('/') ? 'd' : '', path: decodeName(gone[1] as string) };
  const m = /^([<>ch.][fdLDS])([cstpoguax.+ ?]{9}) (\S+) (.*)$/s.exec(line);
  if (m) {
    const yx = m[1] as string;
    const attrs = m[2] as string;
    const size = yx[1] === 'f' && /^\d+$/.test(m[3] as string) ? Number(m[3]) : undefined;
    const item = { type: yx[1] as string, path: decodeName(m[4] as string), ...(size !== undefined ? { size } : {}) };
    if (attrs.startsWith('+++')) return { kind: 'added', ...item };
    if (yx[0] !== '.') return { kind: 'updated', ...item };
    if (/^[.t ]+$/.test(attrs) && item.type === 'd') return { kind: 'dir-time', ...item };
    return { kind: 'attributes', ...item };
  }
  // --no-D makes rsync skip devices, FIFOs and sockets; they are refused
  // rather than leave a tree that silently lacks entries upstream has.
  const special = /^skipping non-regular file "(.*)"$/s.exec(line);
  if (special) return { kind: 'special', path: special[1] as string };
  return undefined;
}

/** A name as rsync printed it, back to its bytes (see the top of this file). */
export function decodeName(printed: string): Buffer {
  let name = printed.endsWith('/') && printed.length > 1 ? printed.slice(0, -1) : printed;
  if (name === './' || name === '') name = '.';
  const parts: Buffer[] = [];
  let last = 0;
  for (const m of name.matchAll(/\\#([0-7]{3})/g)) {
    parts.push(Buffer.from(name.slice(last, m.index), 'latin1'), Buffer.from([parseInt(m[1] as string, 8)]));
    last = (m.index ?? 0) + m[0].length;
  }
  parts.push(Buffer.from(name.slice(last), 'latin1'));
  return Buffer.concat(parts);
}

/** The totals rsync's --stats prints, read line by line. */
export class RsyncStats {
  /** Entries that are not directories. */
  files = 0;
  bytes = 0;
  /** Bytes of file content rsync wrote. */
  transferred = 0;

  /** Take what `line` says, if it is a stats line. */
  read(line: string): void {
    const num = (re: RegExp): number | undefined => {
      const mm = re.exec(line);
      return mm ? Number((mm[1] as string).replace(/,/g, '')) : undefined;
    };
    const nFiles = num(/^Number of files: ([\d,]+)/);
    if (nFiles !== undefined) {
      const dirs = num(/dir: ([\d,]+)/);
      this.files = nFiles - (dirs ?? 0);
    }
    this.bytes = num(/^Total file size: ([\d,]+)/) ?? this.bytes;
    this.transferred = num(/^Total transferred file size: ([\d,]+)/) ?? this.transferred;
  }
}

/**
 * A plan: the items a dry run found between upstream and a tree (`base`),
 * with the excludes it ran with. Applying it to an exact clone of `base`
 * makes that clone equal to upstream as the dry run saw it.
 */
export class RsyncPlan implements SourcePlan {
  readonly source = 'rsync';
  readonly items: Item[];
  /** A device, FIFO or socket upstream has (rsync skips them; the fill refuses them). */
  readonly special: string | undefined;
  readonly stats: RsyncStats;
  constructor(
    /** The tree the dry run compared upstream with. */
    readonly base: string,
    readonly excludeTop: readonly string[],
    /** What the dry run said (empty: items are added one by one). */
    said: { items?: Item[]; stats?: RsyncStats; special?: string | undefined } = {},
  ) {
    this.items = said.items ?? [];
    this.stats = said.stats ?? new RsyncStats();
    this.special = said.special;
  }

  add(item: Item): void {
    this.items.push(item);
  }

  /** Whether anything but directory times differs. */
  get changed(): boolean {
    return this.items.some((i) => i.kind !== 'dir-time');
  }

  changes(): ChangeStats {
    return countChanges(this.items);
  }

  tree(): TreeStats {
    return { files: this.stats.files, bytes: this.stats.bytes };
  }

  /**
   * The bytes an apply of this plan writes: the length of every regular
   * file it lists but deletions, those whose attributes alone differ
   * included (the apply writes them anew, --ignore-times). What the apply's
   * --stats then call the total transferred file size.
   */
  bytesToWrite(): number {
    let n = 0;
    for (const i of this.items) if (i.type === 'f' && i.kind !== 'deleted') n += i.size ?? 0;
    return n;
  }

  /** Every path the apply may touch that exists in the base (what is not new or deleted). */
  existingPaths(): Buffer[] {
    return this.items.filter((i) => i.kind !== 'added' && i.kind !== 'deleted').map((i) => i.path);
  }

  /**
   * The --files-from list (NUL-separated, --from0) for the apply: every
   * item but the top. Not the top: rsync takes "." in such a list as "this
   * folder and everything directly in it" (its --dirs rule), so the top's
   * own attributes are set apart (topChanged). A deletion is left out where
   * a folder above it is deleted or replaced by a file or symlink: rsync
   * removes that folder with what it holds (--force).
   */
  filesFrom(): Buffer {
    const byPath = new Map<string, Item>(this.items.map((i) => [i.path.toString('latin1'), i]));
    const parts: Buffer[] = [];
    for (const i of this.items) {
      if (isTop(i.path)) continue;
      if (i.kind === 'deleted' && goesWithAncestor(i.path.toString('latin1'), byPath)) continue;
      parts.push(i.path, Buffer.from([0]));
    }
    return Buffer.concat(parts);
  }

  /** The plan as changes, for `sync --dry-run` (directory times alone left out). */
  asChanges(): TreeChange[] {
    const type = (t: string): TreeChange['type'] => (t === 'f' ? 'file' : t === 'd' ? 'dir' : t === 'L' ? 'symlink' : 'other');
    return this.items
      .filter((i) => i.kind !== 'dir-time')
      .map((i) => ({ kind: i.kind === 'added' ? 'added' : i.kind === 'deleted' ? 'removed' : 'changed', path: i.path, type: i.kind === 'deleted' && i.type === '' ? 'other' : type(i.type) }));
  }

  /** Whether the top folder's own attributes (mode, owner, time) differ. */
  get topChanged(): boolean {
    return this.items.some((i) => isTop(i.path));
  }

  /**
   * How many non-directory entries an apply treated otherwise than the plan
   * said: upstream changed in between. Files count as changed either way
   * (the apply writes an attribute change as a transfer).
   */
  drift(applied: readonly Item[]): number {
    const key = (i: Item): string | undefined => {
      if (i.type === 'd' || i.kind === 'dir-time') return undefined;
      const kind = i.kind === 'attributes' && i.type === 'f' ? 'updated' : i.kind;
      return `${kind} ${i.type} ${i.path.toString('latin1')}`;
    };
    const want = new Set(this.items.map(key).filter((k) => k !== undefined));
    let drift = 0;
    for (const i of applied) {
      const k = key(i);
      if (k === undefined) continue;
      if (want.has(k)) want.delete(k);
      else drift++;
    }
    return drift + want.size;
  }
}

function isTop(p: Buffer): boolean {
  return p.length === 1 && p[0] === 0x2e;
}

/** Whether a folder above `p` is deleted or becomes something other than a folder. */
function goesWithAncestor(p: string, byPath: Map<string, Item>): boolean {
  for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
    const above = byPath.get(p.slice(0, i));
    if (above && (above.kind === 'deleted' || above.type !== 'd')) return true;
  }
  return false;
}

/** Added, updated (content or attributes) and deleted entries among `items`. */
export function countChanges(items: readonly Item[]): ChangeStats {
  const c: ChangeStats = { added: 0, updated: 0, deleted: 0, bytesTransferred: 0 };
  for (const i of items) {
    if (i.kind === 'added' || i.kind === 'deleted') c[i.kind]++;
    else if (i.kind === 'updated' || i.kind === 'attributes') c.updated++;
  }
  return c;
}
