/**
 * Lines of Manifests passed over unparsed by an incremental verification
 * (see metamanifest.ts, deferUnchanged): the base's lines about the base's
 * files, or about sub-Manifests over folders that are all the base's. Each
 * waits under the path it is keyed by (a file line: the file; a MANIFEST
 * line: the sub-Manifest's folder), so that a changed line elsewhere, which
 * disturbs one path, takes out the lines it concerns in a few lookups
 * instead of a pass over every waiting line.
 *
 * A file line about a file the walk listed waits on the walk's node for
 * that file (a LineHolder) instead of in a map of its own: the caller has
 * just looked the node up, and a changed metadata cache's Manifest has
 * tens of thousands of such lines, each a map entry fewer this way.
 */
import { entryHead, type FileTag } from './manifest-format.js';
import { parentOf } from './tree-walk.js';

/** A line passed over unparsed: the line (trimmed), its number, and the tree path of its Manifest. */
export interface DeferredLine {
  raw: string;
  line: number;
  manifest: string;
}

/**
 * A line, and the next one under the same key: one object a line, there
 * being tens of thousands of them, kept as small as a line can be told
 * again from (the path and tag are its own text's: entryHead reads them
 * again where, rarely, they are asked for).
 */
interface Link extends DeferredLine {
  next: Link | undefined;
}

/** An object a file line can wait on: the walk's node for the file. */
export interface LineHolder {
  waiting?: Link | undefined;
}

export class DeferredLines {
  private readonly byFile = new Map<string, Link>();
  private readonly byFolder = new Map<string, Link>();
  /**
   * Holders a file line was put on, each at least once (again if lines
   * were taken off it and put on it since; some hold none by now): an
   * array, not a set, as each add would be one more lookup.
   */
  private readonly holders: LineHolder[] = [];
  /** How many file lines wait, wherever they do. */
  private files = 0;

  /** @param holderOf the holder for a file's path, where there is one (the walk's node for it) */
  constructor(private readonly holderOf: (p: string) => LineHolder | undefined) {}

  /**
   * Wait under its key: a file line's file, a MANIFEST line's sub-Manifest's
   * folder; a file line on `holder` (holderOf(path)) where given.
   */
  add(raw: string, line: number, manifest: string, tag: FileTag, path: string, holder?: LineHolder): void {
    if (tag !== 'MANIFEST') this.files++;
    if (holder && tag !== 'MANIFEST') {
      if (holder.waiting === undefined) this.holders.push(holder);
      holder.waiting = { raw, line, manifest, next: holder.waiting };
      return;
    }
    const map = tag === 'MANIFEST' ? this.byFolder : this.byFile;
    const key = tag === 'MANIFEST' ? (parentOf(path) ?? '') : path;
    map.set(key, { raw, line, manifest, next: map.get(key) });
  }

  /** Whether a file line about `p` waits: `p` is covered by it. `holder`: holderOf(p), where the caller has it. */
  coversFile(p: string, holder: LineHolder | undefined = this.holderOf(p)): boolean {
    return holder?.waiting !== undefined || this.byFile.has(p);
  }

  /**
   * Take out, into `out`, the lines a disturbance of `p` concerns: those
   * keyed by `p` or by a folder holding it (see isDisturbed in
   * metamanifest.ts: a key is disturbed when it is a disturbed path or
   * holds one).
   */
  takeAbout(p: string, out: DeferredLine[]): void {
    for (let k: string | undefined = p; k !== undefined; k = parentOf(k)) {
      this.files -= take(this.byFile, k, out);
      take(this.byFolder, k, out);
      if (this.holders.length > 0) {
        const holder = this.holderOf(k);
        if (holder?.waiting) this.files -= takeHeld(holder, out);
      }
    }
  }

  /**
   * Take out, into `out`, every line keyed by a path inside folder `dir` (a
   * disturbed IGNORE of it): a pass over all. Into an array the caller
   * holds, not spread into one: an IGNORE over a large folder can take out
   * more lines than a call can have arguments.
   */
  takeInside(dir: string, out: DeferredLine[]): void {
    const prefix = `${dir}/`;
    for (const key of [...this.byFile.keys()]) if (key.startsWith(prefix)) this.files -= take(this.byFile, key, out);
    for (const key of [...this.byFolder.keys()]) if (key.startsWith(prefix)) take(this.byFolder, key, out);
    for (const holder of this.holders) {
      const l = holder.waiting;
      if (l && entryHead(l.raw, l.manifest)?.path.startsWith(prefix)) this.files -= takeHeld(holder, out);
    }
  }

  /** How many file lines wait. */
  fileLines(): number {
    return this.files;
  }

  /** The folders of the sub-Manifests whose MANIFEST lines wait (not read: all the base's). */
  manifestFolders(): IterableIterator<string> {
    return this.byFolder.keys();
  }
}

/** Take out, into `out`, every line waiting on `holder` (all about its one file); how many. */
function takeHeld(holder: LineHolder, out: DeferredLine[]): number {
  let n = 0;
  for (let l = holder.waiting; l; l = l.next, n++) out.push(l);
  holder.waiting = undefined;
  return n;
}

/** Take out, into `out`, every line under `key`; how many. */
function take(map: Map<string, Link>, key: string, out: DeferredLine[]): number {
  const link = map.get(key);
  if (!link) return 0;
  map.delete(key);
  let n = 0;
  for (let l: Link | undefined = link; l; l = l.next, n++) out.push(l);
  return n;
}
