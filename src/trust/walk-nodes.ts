/**
 * The nodes a tree walk found, kept by folder: for each folder listed, its
 * entries by name. A 1% change of a Gentoo-sized tree lists about 1100
 * folders holding some 38k entries (a changed metadata cache folder holds
 * hundreds). Keyed by tree path, each entry cost a path string made for it
 * (two strings, once joined and hashed) that lived as long as the walk;
 * keyed by folder, an entry's key is the name its folder's listing already
 * gave, and a Manifest's lines about the files of its own folder are
 * looked up by the name on the line, with no path made at all
 * (metamanifest.ts, deferUnchanged).
 */

/**
 * An entry as the walk found it. Each node in a walk's `nodes` is an
 * object of its own, never shared, so that the verification can keep
 * lines waiting on it (deferred-lines.ts, LineHolder).
 */
export interface Node {
  kind: 'file' | 'dir' | 'other';
  /** -1 where not stat'ed (reading the file checks the size). */
  size: number;
  /** -Infinity: untouched since the clone; Infinity: not known (a full verification). */
  ctimeMs: number;
  /** For a symlink to a file of the tree: the file to read. */
  target?: string;
  /** Why a node that is not a file or folder cannot be verified. */
  odd?: string;
  /**
   * Kept for the verification: a file's first deferred line
   * (deferred-lines.ts, LineHolder). A file node is made with it, unset,
   * so that setting it later costs no allocation (a property added to an
   * object after the fact gets a property array of its own: tens of
   * thousands of them, copied by the collector until the end).
   */
  waiting?: number | undefined;
}

/**
 * A regular file's node, made with its `waiting` slot (see Node): the walk
 * makes every regular file's node here. (A symlink's, which resolveLink
 * makes, never holds lines.)
 */
export function fileNode(size: number, ctimeMs: number): Node {
  return { kind: 'file', size, ctimeMs, waiting: undefined };
}

export class WalkNodes {
  /** Per folder (tree-relative path, '' the top) with a node in it: its entries' nodes by name. */
  private readonly byFolder = new Map<string, Map<string, Node>>();
  /** The top folder's own node. */
  private top: Node | undefined;

  /** The node at tree path `p`. */
  get(p: string): Node | undefined {
    if (p === '') return this.top;
    const i = p.lastIndexOf('/');
    return this.byFolder.get(i < 0 ? '' : p.slice(0, i))?.get(i < 0 ? p : p.slice(i + 1));
  }

  has(p: string): boolean {
    return this.get(p) !== undefined;
  }

  /** Set the node at tree path `p`. */
  set(p: string, n: Node): void {
    if (p === '') {
      this.top = n;
      return;
    }
    const i = p.lastIndexOf('/');
    this.setIn(i < 0 ? '' : p.slice(0, i), i < 0 ? p : p.slice(i + 1), n);
  }

  /** Set the node of entry `name` of folder `dir`. */
  setIn(dir: string, name: string, n: Node): void {
    this.folder(dir).set(name, n);
  }

  /** The entries of folder `dir` by name, to set them in (made empty if it has none yet): for a caller that sets many. */
  folder(dir: string): Map<string, Node> {
    let entries = this.byFolder.get(dir);
    if (!entries) {
      entries = new Map();
      this.byFolder.set(dir, entries);
    }
    return entries;
  }

  /** The entries of folder `dir` by name, if it has any. */
  inFolder(dir: string): ReadonlyMap<string, Node> | undefined {
    return this.byFolder.get(dir);
  }

  /** Every folder with entries, and its entries by name: the whole walk without a path made. */
  folders(): IterableIterator<[string, ReadonlyMap<string, Node>]> {
    return this.byFolder.entries();
  }

  /** Every node with its tree path (made for each: where paths are needed anyway). */
  *[Symbol.iterator](): IterableIterator<[string, Node]> {
    if (this.top) yield ['', this.top];
    for (const [dir, entries] of this.byFolder) for (const [name, n] of entries) yield [dir === '' ? name : `${dir}/${name}`, n];
  }
}
