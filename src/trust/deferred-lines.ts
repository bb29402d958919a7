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
 *
 * A MANIFEST line about a folder of the base's folder index waits under the
 * folder's place in it (an array by place) instead of in a map by path: a
 * changed category Manifest of a 1% change of a Gentoo-sized tree defers
 * one line per package it did not need to read, 19k of them, and a map
 * that grows to that many keys cost a sixth of reading those Manifests.
 *
 * A waiting line is not an object but a slot in four arrays of numbers:
 * its Manifest, its number, where it starts in the Manifest's text, and the
 * next line under the same key. Tens of thousands of lines wait until the
 * verification ends, and kept as objects (each with its text, a string of
 * its own) they were copied by every young-generation collection on the
 * way; numbers in a few large arrays are not. A line's text is cut again
 * from its Manifest's text on the rare path that takes it out.
 */
import { entryHead } from './manifest-format.js';
import { parentOf, type IndexPlaces } from './tree-walk.js';

/** A line taken out: the line (trimmed), its number, and the tree path of its Manifest. */
export interface DeferredLine {
  raw: string;
  line: number;
  manifest: string;
}

/** An object a file line can wait on (the walk's node for the file): its first line's slot + 1, or undefined. */
export interface LineHolder {
  waiting?: number | undefined;
}

/** The end of a chain of lines under one key. */
const END = 0;
/** Slots to start with: a 1% change of a Gentoo-sized tree defers about 60k lines; the arrays double as needed. */
const INITIAL_SLOTS = 16384;

export class DeferredLines {
  /** Per Manifest lines were added for: its tree path and its text. */
  private readonly manifests: string[] = [];
  private readonly texts: string[] = [];
  /** Per slot (slot 0 is unused, so that 0 can end a chain): Manifest, line number, start in the text, next slot. */
  private of = new Int32Array(INITIAL_SLOTS);
  private lineNo = new Int32Array(INITIAL_SLOTS);
  private start = new Int32Array(INITIAL_SLOTS);
  private next = new Int32Array(INITIAL_SLOTS);
  private slots = 1;
  private readonly byFile = new Map<string, number>();
  private readonly byFolder = new Map<string, number>();
  /**
   * Holders a file line was put on, each at least once (again if lines
   * were taken off it and put on it since; some hold none by now): an
   * array, not a set, as each add would be one more lookup.
   */
  private readonly holders: LineHolder[] = [];
  /** How many file lines wait, wherever they do. */
  private files = 0;
  /** Keys takeAbout took every line out from, for good. */
  private readonly swept = new Set<string>();
  /** By a folder's place (see `places`): its first MANIFEST line's slot, END for none. */
  private readonly byPlace: Int32Array;
  /** By place: 1 where takeAbout took every line out, for good (as `swept` by key). */
  private readonly sweptAt: Uint8Array;
  /** The places lines were put under, each once. */
  private readonly placesUsed: number[] = [];

  /**
   * @param holderOf the holder for a file's path, where there is one (the walk's node for it)
   * @param places the base's folder index by place (TreeWalk.places), where the walk had one
   */
  constructor(
    private readonly holderOf: (p: string) => LineHolder | undefined,
    private readonly places?: IndexPlaces,
  ) {
    this.byPlace = new Int32Array(places?.count ?? 0);
    this.sweptAt = new Uint8Array(places?.count ?? 0);
  }

  /**
   * The Manifest at tree path `manifest`, whose text is `text`, for `add`:
   * once per Manifest, before its first line is added.
   */
  manifest(manifest: string, text: string): number {
    this.manifests.push(manifest);
    this.texts.push(text);
    return this.manifests.length - 1;
  }

  /**
   * A file line waits under its file's path; a MANIFEST line under its
   * sub-Manifest's folder (`addSubManifest`). The line is number `line` of
   * Manifest `manifest` (from `manifest()`), starting at `start` in its
   * text. The caller's rule: no line is added under a key (or on a holder)
   * that takeAbout was asked about, or that holds a path it was asked
   * about (a disturbed key, which the caller defers nothing under).
   */
  addFile(manifest: number, line: number, start: number, path: string): void {
    this.files++;
    this.addUnder(this.byFile, path, manifest, line, start);
  }

  /** A MANIFEST line, under the folder of its sub-Manifest (see addFile). */
  addSubManifest(manifest: number, line: number, start: number, folder: string): void {
    const at = this.places?.of(folder);
    if (at !== undefined) this.addSubManifestAt(manifest, line, start, at);
    else this.addUnder(this.byFolder, folder, manifest, line, start);
  }

  /** addSubManifest for the folder at place `at` of the base's folder index (see `places`). */
  addSubManifestAt(manifest: number, line: number, start: number, at: number): void {
    if (this.sweptAt[at] === 1) throw new Error(`deferred-lines: a line added under ${this.places?.path(at)}, after a disturbance concerned it`);
    const slot = this.slot(manifest, line, start);
    const first = this.byPlace[at] as number;
    if (first === END) this.placesUsed.push(at);
    this.next[slot] = first;
    this.byPlace[at] = slot;
  }

  /** Wait on `holder`, the walk's node for the file the line is about (holderOf(its path)): as `addFile` does, with no path needed. */
  hold(manifest: number, line: number, start: number, holder: LineHolder): void {
    const slot = this.slot(manifest, line, start);
    this.files++;
    if (holder.waiting === undefined) this.holders.push(holder);
    this.next[slot] = holder.waiting ?? END;
    holder.waiting = slot;
  }

  /** Whether a file line waits on `holder`: its file is covered by it. */
  holds(holder: LineHolder): boolean {
    return holder.waiting !== undefined;
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
    // A key a disturbance concerned stays disturbed, so no line is put
    // under it again (the caller's rule, see `addFile`): the second time the
    // walk up meets a key, every key from there up is empty already.
    // Thousands of disturbed paths share a few folders.
    for (let k: string | undefined = p; k !== undefined && !this.swept.has(k); k = parentOf(k)) {
      this.swept.add(k);
      this.files -= this.take(this.byFile, k, out);
      this.take(this.byFolder, k, out);
      const at = this.places?.of(k);
      if (at !== undefined) {
        this.sweptAt[at] = 1;
        this.takeAt(at, out);
      }
      if (this.holders.length > 0) {
        const holder = this.holderOf(k);
        if (holder?.waiting !== undefined) this.files -= this.takeHeld(holder, out);
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
    for (const key of [...this.byFile.keys()]) if (key.startsWith(prefix)) this.files -= this.take(this.byFile, key, out);
    for (const key of [...this.byFolder.keys()]) if (key.startsWith(prefix)) this.take(this.byFolder, key, out);
    for (const at of this.placesUsed) if (this.byPlace[at] !== END && this.places?.path(at).startsWith(prefix)) this.takeAt(at, out);
    for (const holder of this.holders) {
      if (holder.waiting === undefined) continue;
      const l = this.line(holder.waiting);
      if (entryHead(l.raw, l.manifest)?.path.startsWith(prefix)) this.files -= this.takeHeld(holder, out);
    }
  }

  /** How many file lines wait. */
  fileLines(): number {
    return this.files;
  }

  /** The folders of the sub-Manifests whose MANIFEST lines wait (not read: all the base's), each once. */
  *manifestFolders(): IterableIterator<string> {
    yield* this.byFolder.keys();
    for (const at of this.placesUsed) if (this.byPlace[at] !== END) yield this.places?.path(at) as string;
  }

  private addUnder(map: Map<string, number>, key: string, manifest: number, line: number, start: number): void {
    if (this.swept.has(key)) throw new Error(`deferred-lines: a line added under ${key}, after a disturbance concerned it`);
    const slot = this.slot(manifest, line, start);
    this.next[slot] = map.get(key) ?? END;
    map.set(key, slot);
  }

  /** A new slot for a line, the arrays grown (doubled) where full. */
  private slot(manifest: number, line: number, start: number): number {
    if (this.slots === this.of.length) {
      const grow = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.of = grow(this.of);
      this.lineNo = grow(this.lineNo);
      this.start = grow(this.start);
      this.next = grow(this.next);
    }
    const slot = this.slots++;
    this.of[slot] = manifest;
    this.lineNo[slot] = line;
    this.start[slot] = start;
    return slot;
  }

  /** The line in `slot`, its text cut again from its Manifest's (trimmed, as parseManifest gave it). */
  private line(slot: number): DeferredLine {
    const m = this.of[slot] as number;
    const text = this.texts[m] as string;
    const from = this.start[slot] as number;
    const end = text.indexOf('\n', from);
    return { raw: text.slice(from, end === -1 ? text.length : end).trim(), line: this.lineNo[slot] as number, manifest: this.manifests[m] as string };
  }

  /** Take out, into `out`, every line of the chain from `slot`; how many. */
  private chain(slot: number, out: DeferredLine[]): number {
    let n = 0;
    for (let s = slot; s !== END; s = this.next[s] as number, n++) out.push(this.line(s));
    return n;
  }

  /** Take out, into `out`, every line waiting on `holder` (all about its one file); how many. */
  private takeHeld(holder: LineHolder, out: DeferredLine[]): number {
    const n = this.chain(holder.waiting as number, out);
    holder.waiting = undefined;
    return n;
  }

  /** Take out, into `out`, every line under the place `at` (see addSubManifestAt). */
  private takeAt(at: number, out: DeferredLine[]): void {
    const slot = this.byPlace[at] as number;
    if (slot === END) return;
    this.byPlace[at] = END;
    this.chain(slot, out);
  }

  /** Take out, into `out`, every line under `key`; how many. */
  private take(map: Map<string, number>, key: string, out: DeferredLine[]): number {
    const slot = map.get(key);
    if (slot === undefined) return 0;
    map.delete(key);
    return this.chain(slot, out);
  }
}
