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

/** How an rsync run ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How a plan's dry run ended: its exit, and the tail of its complaints. */
export interface PlanEnd {
  status: ExitStatus;
  stderr: string;
}

/**
 * A plan: the items a dry run found between upstream and a tree (`base`),
 * with the excludes it ran with. Applying it to an exact clone of `base`
 * makes that clone equal to upstream as the dry run saw it.
 *
 * A plan may still be growing: the dry run goes on while a fill applies
 * what it has found so far (see RsyncSource.apply). Items are only ever
 * added, in the order rsync found them; `complete` says the dry run ended,
 * and `ended()` how.
 */
export class RsyncPlan implements SourcePlan {
  readonly source = 'rsync';
  readonly items: Item[];
  /** A device, FIFO or socket upstream has (rsync skips them; the fill refuses them). */
  special: string | undefined;
  readonly stats: RsyncStats;
  /** Whether the dry run has ended: no more items come. */
  complete = true;
  private end: Promise<PlanEnd>;
  private settle: ((end: PlanEnd) => void) | undefined;
  private fail: ((err: unknown) => void) | undefined;
  private waiters: { ready: () => boolean; wake: () => void }[] = [];
  private stopper: (() => void) | undefined;

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
    this.end = Promise.resolve({ status: { code: 0, signal: null }, stderr: '' });
  }

  /** A plan whose dry run is starting: items come with add(), the end with finish() or abandon(). */
  static growing(base: string, excludeTop: readonly string[]): RsyncPlan {
    const plan = new RsyncPlan(base, excludeTop);
    plan.complete = false;
    plan.end = new Promise<PlanEnd>((resolve, reject) => {
      plan.settle = resolve;
      plan.fail = reject;
    });
    // Awaited by whoever uses the plan; not an unhandled rejection meanwhile.
    plan.end.catch(() => undefined);
    return plan;
  }

  add(item: Item): void {
    this.items.push(item);
    this.wakeWaiters();
  }

  /** The dry run ended (with any exit: a failed one leaves a partial plan). */
  finish(end: PlanEnd): void {
    this.complete = true;
    this.settle?.(end);
    this.wakeWaiters();
  }

  /** The dry run could not be run at all. */
  abandon(err: unknown): void {
    this.complete = true;
    this.fail?.(err);
    this.wakeWaiters();
  }

  /** How the dry run ended, once it has. */
  ended(): Promise<PlanEnd> {
    return this.end;
  }

  /** How to stop the dry run (its process, once started). */
  stopWith(stop: () => void): void {
    this.stopper = stop;
  }

  /** Stop the dry run if it still goes on (nobody needs the rest), and wait till it has ended. */
  async stop(): Promise<void> {
    if (!this.complete) this.stopper?.();
    await this.end.catch(() => undefined);
  }

  /** Resolves once the plan holds at least `count` items, or is complete. */
  whenGrown(count: number): Promise<void> {
    return this.when(() => this.items.length >= count);
  }

  /** Resolves once the plan holds a change (more than a folder's time), or is complete. */
  whenChanged(): Promise<void> {
    return this.when(() => this.changed);
  }

  private when(ready: () => boolean): Promise<void> {
    if (this.complete || ready()) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ ready, wake }));
  }

  private wakeWaiters(): void {
    if (this.waiters.length === 0) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) {
      if (this.complete || w.ready()) w.wake();
      else this.waiters.push(w);
    }
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
    return existing(this.items);
  }

  /**
   * The --files-from list (NUL-separated, --from0) for applying the whole
   * plan at once: every item but the top. Not the top: rsync takes "." in
   * such a list as "this folder and everything directly in it" (its --dirs
   * rule), so the top's own attributes are set apart (topChanged). A
   * deletion is left out where a folder above it is deleted or replaced by
   * a file or symlink: rsync removes that folder with what it holds
   * (--force).
   */
  filesFrom(): Buffer {
    return this.lastApply(0, new Set()).list;
  }

  /**
   * An apply of `items` (the next part of a growing plan) while the dry run
   * goes on: everything but deletions and the top. Deletions wait for the
   * last apply: only the whole plan tells which of them go with a folder
   * above them that is deleted or replaced. `listed` is told each path.
   */
  static partApply(items: readonly Item[], listed: Set<string>): { list: Buffer; unshare: Buffer[]; count: number } {
    const parts: Buffer[] = [];
    for (const i of items) {
      if (isTop(i.path) || i.kind === 'deleted') continue;
      listed.add(i.path.toString('latin1'));
      parts.push(i.path, NUL);
    }
    return { list: Buffer.concat(parts), unshare: existing(items), count: parts.length / 2 };
  }

  /**
   * The last apply, once the plan is complete and `partApply` had its items
   * before `from` (their paths in `listed`): the items from `from` on, every
   * deletion (but those that go with a folder above them, and those whose
   * path an earlier part listed: that entry was replaced by a file, folder
   * or symlink there, which took the old one away), and again every folder
   * an earlier part listed, so that folder times are set after everything
   * in them is written.
   */
  lastApply(from: number, listed: ReadonlySet<string>): { list: Buffer; unshare: Buffer[]; count: number } {
    const byPath = new Map<string, Item>(this.items.map((i) => [i.path.toString('latin1'), i]));
    const parts: Buffer[] = [];
    const seen = new Set<string>();
    const take = (i: Item, key: string): void => {
      if (seen.has(key)) return;
      seen.add(key);
      parts.push(i.path, NUL);
    };
    this.items.forEach((i, n) => {
      if (isTop(i.path)) return;
      const key = i.path.toString('latin1');
      if (i.kind === 'deleted') {
        if (!listed.has(key) && !goesWithAncestor(key, byPath)) take(i, key);
      } else if (n >= from || i.type === 'd') take(i, key);
    });
    return { list: Buffer.concat(parts), unshare: existing(this.items.slice(from)), count: parts.length / 2 };
  }

  /** The plan as changes, for `sync --dry-run` (directory times alone left out). */
  asChanges(): TreeChange[] {
    const type = (t: string): TreeChange['type'] => (t === 'f' ? 'file' : t === 'd' ? 'dir' : t === 'L' ? 'symlink' : 'other');
    return this.items
      .filter((i) => i.kind !== 'dir-time')
      .map((i) => ({ kind: i.kind === 'added' ? 'added' : i.kind === 'deleted' ? 'removed' : 'changed', path: i.path, type: i.kind === 'deleted' && i.type === '' ? 'other' : type(i.type) }));
  }

  /**
   * Whether the top folder's own mode, owner or group differ: an apply then
   * sets them apart (see filesFrom). Not its time alone: the commit gives
   * the top the commit's time (store/commit.ts), so every plan finds it
   * different, and setting upstream's would cost a connection for nothing.
   */
  get topChanged(): boolean {
    return this.items.some((i) => isTop(i.path) && i.kind !== 'dir-time');
  }

  /**
   * How many non-directory entries an apply treated otherwise than the plan
   * said: upstream changed in between. Files count as changed either way
   * (the apply writes an attribute change as a transfer). `upto`: only the
   * plan's first items count (those applied; the rest went another way).
   */
  drift(applied: readonly Item[], upto = this.items.length): number {
    const key = (i: Item): string | undefined => {
      if (i.type === 'd' || i.kind === 'dir-time') return undefined;
      const kind = i.kind === 'attributes' && i.type === 'f' ? 'updated' : i.kind;
      return `${kind} ${i.type} ${i.path.toString('latin1')}`;
    };
    const want = new Set(this.items.slice(0, upto).map(key).filter((k) => k !== undefined));
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

const NUL = Buffer.from([0]);

/** The paths of `items` that exist in the base (not new, not deleted): what an apply may touch in place. */
function existing(items: readonly Item[]): Buffer[] {
  return items.filter((i) => i.kind !== 'added' && i.kind !== 'deleted').map((i) => i.path);
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
