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
import type { FileTag } from './manifest-format.js';
import { parentOf } from './tree-walk.js';

/** A line passed over unparsed. */
export interface DeferredLine {
  /** The line (trimmed), its number, and the tree path of its Manifest. */
  raw: string;
  line: number;
  manifest: string;
  tag: FileTag;
  /** The tree path it names. */
  path: string;
}

/**
 * A line, and the next one under the same key: one object a line, there
 * being tens of thousands of them.
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
  /** Holders a file line was put on (some may hold none by now), each once. */
  private readonly holders = new Set<LineHolder>();

  /** @param holderOf the holder for a file's path, where there is one (the walk's node for it) */
  constructor(private readonly holderOf: (p: string) => LineHolder | undefined) {}

  /**
   * Wait under its key: a file line's file, a MANIFEST line's sub-Manifest's
   * folder; a file line on `holder` (holderOf(path)) where given.
   */
  add(raw: string, line: number, manifest: string, tag: FileTag, path: string, holder?: LineHolder): void {
    if (holder && tag !== 'MANIFEST') {
      this.holders.add(holder);
      holder.waiting = { raw, line, manifest, tag, path, next: holder.waiting };
      return;
    }
    const map = tag === 'MANIFEST' ? this.byFolder : this.byFile;
    const key = tag === 'MANIFEST' ? (parentOf(path) ?? '') : path;
    map.set(key, { raw, line, manifest, tag, path, next: map.get(key) });
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
      take(this.byFile, k, out);
      take(this.byFolder, k, out);
      if (this.holders.size > 0) {
        const holder = this.holderOf(k);
        if (holder?.waiting) takeHeld(holder, out);
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
    for (const map of [this.byFile, this.byFolder]) {
      for (const key of [...map.keys()]) if (key.startsWith(prefix)) take(map, key, out);
    }
    for (const holder of this.holders) if (holder.waiting?.path.startsWith(prefix)) takeHeld(holder, out);
  }

  /** How many file lines wait. */
  fileLines(): number {
    let n = 0;
    for (const link of this.byFile.values()) for (let l: Link | undefined = link; l; l = l.next) n++;
    for (const holder of this.holders) for (let l = holder.waiting; l; l = l.next) n++;
    return n;
  }

  /** The folders of the sub-Manifests whose MANIFEST lines wait (not read: all the base's). */
  manifestFolders(): IterableIterator<string> {
    return this.byFolder.keys();
  }
}

/** Take out, into `out`, every line waiting on `holder` (all about its one file). */
function takeHeld(holder: LineHolder, out: DeferredLine[]): void {
  for (let l = holder.waiting; l; l = l.next) out.push(l);
  holder.waiting = undefined;
}

function take(map: Map<string, Link>, key: string, out: DeferredLine[]): void {
  const link = map.get(key);
  if (!link) return;
  map.delete(key);
  for (let l: Link | undefined = link; l; l = l.next) out.push(l);
}
