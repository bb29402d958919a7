/**
 * MetaManifest verification (GLEP 74): a whole tree checked against its
 * Manifests, from one OpenPGP-signed top-level Manifest down.
 *
 *   1. Walk the tree (names starting with "." are never part of it).
 *   2. Check the top-level Manifest's cleartext signature against the key
 *      file, and read only the text the signature covers.
 *   3. Its TIMESTAMP must be there and, with a maximum age, recent enough.
 *   4. Follow every MANIFEST entry (the sub-Manifest is checked like any
 *      file, then decompressed and read); check every DATA, MISC, EBUILD and
 *      AUX entry: present, a regular file, the size and every hash reposnap
 *      can compute.
 *   5. Every file must be covered by an entry or an IGNORE; an entry inside
 *      an ignored path, or two entries that disagree, are errors.
 *
 * Incremental verification. A snapshot that passed is immutable, so the
 * next tree, cloned from it, only needs its changes checked. What changed is
 * read from the kernel, not from the source: every write, rename, link or
 * attribute change sets an inode's ctime to the current time, and nothing
 * can set it back. A file whose ctime is before the clone finished
 * (`base.clonedAt`) is the base snapshot's file at the same path, because no
 * fill moves existing entries (they write new files and rename those into
 * place). So a file is hashed again unless it is untouched and its entry is
 * the same as in the base's Manifest; a sub-Manifest that is untouched, whose
 * entry is unchanged and whose folder holds nothing touched is not even read,
 * unless a changed Manifest added or dropped an entry inside that folder. The
 * signature and TIMESTAMP are always checked. The cost is a stat of every
 * file plus reading what changed; see docs/design.md for what this trusts.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { EventLoopTurns } from '../util/event-loop-turns.js';
import { NotReadable, readRegularFile } from '../util/fs.js';
import { Limiter } from '../util/limit.js';
import { runProcess } from '../util/process.js';
import { DeferredLines, type DeferredLine, type LineHolder } from './deferred-lines.js';
import { hashChecks } from './hash-algorithms.js';
import { HashPool } from './hash-pool.js';
import { cleartextBody, entryHead, entryName, formatTimestamp, manifestDir, manifestLines, ManifestSyntaxError, parseManifest, type FileEntry, type ParsedManifest } from './manifest-format.js';
import { inflateGzip, manifestText, MAX_MANIFEST_BYTES } from './manifest-bytes.js';
import type { BaseDiff, ReadAheadManifest } from './read-manifest-ahead.js';
import type { CleartextVerdict, Keyring } from './openpgp.js';
import type { WalkHelper } from './walk-helper.js';
import { join, parentOf, statNode, UNLISTED_FOLDER, walkChangedTree, walkTree, type FolderIndex, type Node, type StatPolicy, type TreeWalk } from './tree-walk.js';

export interface MetaManifestOptions {
  repo: string;
  /** The tree to verify. */
  root: string;
  keyring: Keyring;
  /** Hashing threads (sync-rsync-verify-jobs); 1 hashes on the calling thread. */
  jobs: number;
  /** TIMESTAMP older than this many days fails; 0: no limit (sync-rsync-verify-max-age). */
  maxAgeDays: number;
  now?: Date;
  /** Names at the top of `root` that are not part of the tree. */
  ignoreTop?: readonly string[];
  /**
   * Verify incrementally against the verified tree `root` was cloned from.
   * `statEveryFile`: look at every file's ctime, not only those in folders
   * whose own ctime changed (see walkTree); for a tree that may have been
   * written in place. `folders`: the base's folder index, so that only
   * folders touched since the clone are listed (see walkChangedTree).
   */
  base?: { root: string; clonedAt: number; statEveryFile?: boolean; folders?: FolderIndex };
  /** Given the tree's folder index when it passes, to record for the next incremental verification. */
  onFolders?: (index: FolderIndex) => void;
  /**
   * Sub-Manifests read ahead while the tree was being filled
   * (ManifestReadAhead): each is used only for the very bytes read now, or
   * where it is final for the bytes it holds (the tree's for good, see
   * ReadAheadManifest), and only if the base copies were read from
   * `base.root`.
   */
  readAhead?: { readonly baseRoot: string; take(p: string): ReadAheadManifest | undefined };
  /**
   * The top-level Manifest's signature checked while the tree was being
   * filled (SignatureAhead): taken only for the very bytes read now, and
   * only where the check ran (else it is checked here).
   */
  signatureAhead?: { take(bytes: Buffer): Promise<CleartextVerdict> | undefined };
  /**
   * Threads started ahead by the caller, who closes them: the hashing
   * threads (else `jobs` are started here) and the incremental walk's
   * helper (else one is started for the walk).
   */
  threads?: { pool?: HashPool; walkHelper?: WalkHelper };
}

export interface MetaManifestResult {
  /** Fingerprint of the key that signed the top-level Manifest. */
  signedBy: string;
  /** Its TIMESTAMP (GLEP 74 form). */
  timestamp: string;
  incremental: boolean;
  /** Files covered by an entry. */
  files: number;
  /** Files whose hashes were computed, and their bytes. */
  hashed: number;
  bytesHashed: number;
  /** Manifests read, and sub-Manifests whose whole folder was the base's. */
  manifests: number;
  /** Of the Manifests read, those found read ahead during the fill (MetaManifestOptions.readAhead). */
  readAhead: number;
  skippedManifests: number;
  /** Folders in the tree, and those listed (all but, incrementally with the base's folder index, those untouched since the clone). */
  folders: number;
  foldersListed: number;
}

/** Verification refused the tree: `file` (tree-relative) and what is wrong with it. */
export class ManifestFailure extends Error {
  constructor(
    readonly file: string,
    readonly what: string,
  ) {
    super(`${file}: ${what}`);
  }
}

/** How long (ms) Manifests are read without the event loop turning (see EventLoopTurns). */
const TURN_MS = 8;

/** Decompressor processes (bz2, xz, zst sub-Manifests) running at once. */
const decompressors = new Limiter(4);

export async function verifyMetaManifest(opts: MetaManifestOptions): Promise<MetaManifestResult> {
  const root = await fs.realpath(opts.root);
  // The signature is checked (by gpg, another process) while the tree is walked.
  const topFile = path.join(root, 'Manifest');
  const topSt = await fs.lstat(topFile).catch(() => undefined);
  if (!topSt?.isFile()) throw new ManifestFailure('Manifest', 'missing (the tree has no top-level Manifest)');
  // Read once: gpg checks these bytes (a copy of them), here or ahead of
  // the fill's end (signature-ahead.ts) where it read the same.
  const topBytes = readBounded(topFile, 'Manifest');
  const ownCheck = (): Promise<CleartextVerdict> => opts.keyring.verifyCleartextBytes(opts.repo, topBytes);
  const signing = opts.signatureAhead?.take(topBytes)?.catch(ownCheck) ?? ownCheck();
  signing.catch(() => undefined);
  // What is untouched since the clone (see the header). The clone finished
  // at base.clonedAt; writes after it come at least 40 ms later (the
  // storage waits), so on a filesystem with sub-second timestamps anything
  // changed since has a ctime from clonedAt + 40 ms on, and on one with
  // whole seconds, from the second that instant falls in.
  const base = opts.base;
  const boundary = (fine: boolean): number => {
    if (!base) return -Infinity;
    return fine ? base.clonedAt + 40 : Math.floor((base.clonedAt + 40) / 1000) * 1000;
  };
  const policy: StatPolicy = !base ? 'none' : base.statEveryFile ? 'all' : 'dirs';
  // Its base lines are only worth anything if they are this base's.
  const readAhead = base && opts.readAhead?.baseRoot === base.root ? opts.readAhead : undefined;
  const ignoreTop = new Set(opts.ignoreTop ?? []);
  let walk: TreeWalk;
  try {
    walk = (base?.folders && policy === 'dirs' ? await walkChangedTree(root, ignoreTop, base.folders, boundary, {}, opts.threads?.walkHelper) : undefined) ?? (await walkTree(root, ignoreTop, policy, boundary));
  } catch (err) {
    // gpg is still at work in the keyring's home: a caller that removes the
    // home at once would meet its files (ENOTEMPTY) instead of this error.
    await signing.catch(() => undefined);
    throw err;
  }
  const { nodes, unlisted, untouchedBefore } = walk;
  const signed = await signing;
  if (!signed.ok) throw new ManifestFailure('Manifest', `OpenPGP signature refused: ${signed.why}`);
  const topParsed = parse(signed.text ?? '', 'Manifest');
  const timestamp = topParsed.timestamp;
  if (!timestamp) throw new ManifestFailure('Manifest', 'no TIMESTAMP entry (needed to tell a current tree from a replayed one)');
  if (opts.maxAgeDays > 0) {
    const ageDays = ((opts.now ?? new Date()).getTime() - timestamp.getTime()) / 86_400_000;
    if (ageDays > opts.maxAgeDays) {
      throw new ManifestFailure('Manifest', `TIMESTAMP ${formatTimestamp(timestamp)} is ${Math.floor(ageDays)} days old, more than sync-rsync-verify-max-age = ${opts.maxAgeDays} (a stale or frozen mirror)`);
    }
  }

  const touched = (n: Node): boolean => n.ctimeMs >= untouchedBefore;
  /** The node at `p`, a folder not listed included. */
  const nodeAt = (p: string): Node | undefined => nodes.get(p) ?? (unlisted.has(p) ? UNLISTED_FOLDER : undefined);
  const dirtyDirs = new Set<string>();
  if (base) {
    for (const [dir, entries] of nodes.folders()) {
      for (const n of entries.values()) {
        if (!touched(n)) continue;
        for (let d: string | undefined = dir; d !== undefined && !dirtyDirs.has(d); d = parentOf(d)) dirtyDirs.add(d);
        break;
      }
    }
  }
  const subtreeTouched = (dir: string): boolean => {
    if (unlisted.has(dir)) return dirtyDirs.has(dir);
    const n = nodes.get(dir);
    return !n || touched(n) || dirtyDirs.has(dir);
  };

  const result: MetaManifestResult = {
    signedBy: signed.fingerprint,
    timestamp: formatTimestamp(timestamp),
    incremental: base !== undefined,
    files: 0,
    hashed: 0,
    bytesHashed: 0,
    manifests: 1,
    readAhead: 0,
    skippedManifests: 0,
    folders: walk.folders.size,
    foldersListed: walk.folders.size - unlisted.size,
  };
  const entries = new Map<string, FileEntry>();
  const ignored = new Set<string>(opts.ignoreTop ?? []);
  /** Paths whose entries differ between a changed Manifest and the base's copy. */
  const disturbed = new Set<string>();
  /**
   * Every folder holding a disturbed path, at any depth, with the names of
   * its entries that are one or hold one: a Manifest's lines about its own
   * folder's entries ask about a name in one small set, where asking about
   * the path would make it first (see deferUnchanged).
   */
  const disturbedIn = new Map<string, Set<string>>();
  /**
   * Disturbed IGNOREs: the only disturbed paths that can hold others (an
   * entry names a file; one that names a folder fails wherever it is read).
   */
  const disturbedIgnores = new Set<string>();
  /** The disturbed paths and IGNOREs in the order they came, for waking deferred lines (see the loop after the main pass). */
  const disturbedOrder: string[] = [];
  const ignoresOrder: string[] = [];
  const disturb = (p: string, ignore = false): void => {
    if (!disturbed.has(p)) {
      disturbed.add(p);
      disturbedOrder.push(p);
    }
    if (ignore && !disturbedIgnores.has(p)) {
      disturbedIgnores.add(p);
      ignoresOrder.push(p);
    }
    // Up to the first folder that had the entry on the way already: it has
    // every folder over it too.
    for (let q = p, d = parentOf(p); d !== undefined; q = d, d = parentOf(d)) {
      const name = d === '' ? q : q.slice(d.length + 1);
      const names = disturbedIn.get(d);
      if (names === undefined) disturbedIn.set(d, new Set([name]));
      else if (names.has(name)) break;
      else names.add(name);
    }
  };
  /** Whether a disturbed IGNORE is `dir` or holds it. */
  const ignoredOver = (dir: string | undefined): boolean => {
    if (disturbedIgnores.size > 0) for (let d = dir; d !== undefined; d = parentOf(d)) if (disturbedIgnores.has(d)) return true;
    return false;
  };
  /** Whether a disturbed path is inside `dir`, is `dir`, or holds it (an IGNORE of a parent). */
  const isDisturbed = (dir: string): boolean => disturbedIn.has(dir) || disturbed.has(dir) || ignoredOver(parentOf(dir));
  /**
   * isDisturbed for the entries of folder `dir`, asked by name, for as long
   * as nothing more is disturbed (while a Manifest is parsed, see
   * noteDisturbed): the folder looked up once, not a path made per entry.
   */
  const disturbedNamesIn = (dir: string): ((name: string) => boolean) => {
    if (ignoredOver(dir)) return () => true;
    const names = disturbedIn.get(dir);
    return names === undefined ? () => false : (name) => names.has(name);
  };
  /** Sub-Manifests not read: the base's, over a folder that is all the base's. */
  const skipped = new Map<string, { entry: FileEntry; dir: string }>();
  /**
   * Lines of Manifests that were read, passed over unparsed: the base's
   * lines, about a file in a folder that is the base's, or a sub-Manifest
   * over such a folder (walkChangedTree did not list them). Taken in after
   * all if a changed line elsewhere says something about their path.
   */
  // A file line about a file the walk listed waits on the file's node.
  const places = walk.places;
  const deferred = new DeferredLines((p) => nodes.get(p), places);
  let deferredFiles = 0;
  const pool = opts.threads?.pool ?? new HashPool(opts.jobs);
  // Every few milliseconds, each sub-Manifest read waits for a turn of the
  // event loop: reading them is a chain of promises that settle at once (a
  // read-ahead or gzip Manifest needs no real wait), which would otherwise
  // hold the thread from the first to the last, and the hashing threads'
  // answers, and the batches they need next, with it (hash-pool.ts).
  const turns = new EventLoopTurns(TURN_MS);
  const hashing: Array<Promise<void>> = [];
  let failure: ManifestFailure | undefined;
  const fail = (file: string, what: string): never => {
    failure ??= new ManifestFailure(file, what);
    throw failure;
  };

  /**
   * The node an entry names, following a symlink to a file of the tree. In
   * a folder that was not listed, an entry the base had names the base's
   * file, unchanged; any other is looked at now.
   */
  const fileFor = (entry: FileEntry, sameAsBase: boolean): Node => {
    let n = nodeAt(entry.path);
    if (!n && unlisted.has(parentOf(entry.path) ?? '')) {
      if (base && sameAsBase) return UNTOUCHED_FILE;
      n = statNode(root, entry.path);
      if (n) nodes.set(entry.path, n);
    }
    if (!n) return fail(entry.path, `missing (listed in ${entry.manifest}:${entry.line})`);
    if (n.kind !== 'file') return fail(entry.path, n.odd ?? (n.kind === 'dir' ? `a folder, listed as a file in ${entry.manifest}:${entry.line}` : 'not a regular file'));
    return n;
  };

  /** Check a file against its entry: hashed, unless it and its entry are the verified base's. */
  const checkFile = (entry: FileEntry, sameAsBase: boolean): Promise<void> => {
    const n = fileFor(entry, sameAsBase);
    if (base && sameAsBase && !n.target && !touched(n)) return Promise.resolve();
    // The size is known where the walk stat'ed the file; else reading checks it.
    if (n.size >= 0 && n.size !== entry.size) fail(entry.path, `size mismatch: ${n.size} bytes, ${entry.manifest}:${entry.line} says ${entry.size}`);
    const checks = hashChecks(entry.hashes);
    if (typeof checks === 'string') fail(entry.path, `${entry.manifest}:${entry.line} has ${checks}`);
    const list = checks as Exclude<typeof checks, string>;
    result.hashed++;
    result.bytesHashed += entry.size;
    return handled(pool.hash({ file: n.target ?? path.join(root, entry.path), size: entry.size, algorithms: list.map((c) => c.algorithm) }).then((r) => {
      if ('problem' in r) fail(entry.path, r.problem);
      const digests = (r as { digests: string[] }).digests;
      list.forEach((c, i) => {
        if (digests[i] !== c.expected) fail(entry.path, `${c.name} hash mismatch (content differs from ${entry.manifest}:${entry.line})`);
      });
    }));
  };

  /** Record an entry; a second one for the same file must agree with the first. */
  const register = (entry: FileEntry): void => {
    const seen = entries.get(entry.path);
    if (!seen) {
      entries.set(entry.path, entry);
      return;
    }
    const kindOf = (e: FileEntry): string => (e.tag === 'MANIFEST' ? 'MANIFEST' : 'DATA');
    let agree = kindOf(seen) === kindOf(entry) && seen.size === entry.size;
    for (const [name, v] of entry.hashes) if (seen.hashes.has(name) && seen.hashes.get(name) !== v) agree = false;
    if (!agree) fail(entry.path, `${seen.manifest}:${seen.line} and ${entry.manifest}:${entry.line} disagree about it`);
  };

  /**
   * Take in a Manifest's entries. `sameAsBase`: whether an entry is, word
   * for word, one the base's copy of this Manifest had (so the base
   * verified its file against it); `baseListed`: whether the base's copy
   * had a MANIFEST entry for a sub-Manifest's path, so that the base's copy
   * of that sub-Manifest was verified as one (not lying in an ignored
   * folder, say) and may stand for what the base knew.
   */
  const absorb = async (parsed: ParsedManifest, sameAsBase: (e: FileEntry) => boolean, manifest: string, baseListed: (p: string) => boolean): Promise<void> => {
    if (parsed.timestamp && parsed.timestamp > timestamp) fail(manifest, 'its TIMESTAMP is newer than the top-level Manifest\'s');
    for (const ig of parsed.ignores) ignored.add(ig.path);
    const children: Array<Promise<void>> = [];
    for (const entry of parsed.files) {
      // A name starting with "." anywhere on the path: the first, or one after a "/".
      if (entry.path.startsWith('.') || entry.path.includes('/.')) fail(entry.path, `${entry.manifest}:${entry.line} lists a name starting with "." (never part of the tree)`);
      register(entry);
      const same = sameAsBase(entry);
      // A line the base's copy had word for word is one of its MANIFEST lines.
      if (entry.tag === 'MANIFEST') children.push(openSubManifest(entry, same, same || baseListed(entry.path)));
      else hashing.push(checkFile(entry, same));
    }
    await Promise.all(children);
  };

  const openSubManifest = async (entry: FileEntry, sameAsBase: boolean, baseListed: boolean): Promise<void> => {
    const n = fileFor(entry, sameAsBase);
    const dir = parentOf(entry.path) ?? '';
    if (base && sameAsBase && !n.target && !touched(n) && !subtreeTouched(dir)) {
      skipped.set(entry.path, { entry, dir });
      return;
    }
    await readSubManifest(entry, sameAsBase, baseListed);
  };

  const readSubManifest = async (entry: FileEntry, sameAsBase: boolean, baseListed: boolean): Promise<void> => {
    // Again after a turn: thousands of reads may have waited for the same one.
    for (let turn = turns.due(); turn !== undefined; turn = turns.due()) await turn;
    const n = fileFor(entry, sameAsBase);
    const file = n.target ?? path.join(root, entry.path);
    // A symlink is read and hashed anew every time: what it leads to may
    // have changed through a link on the way that no ctime here shows.
    const unchanged = base !== undefined && sameAsBase && !n.target && !touched(n);
    // Read once, and checked (size, hashes) from those very bytes before they
    // are decompressed or parsed (GLEP 74: never unpack what is not
    // verified). On this thread: Manifests are small, and waiting for a hash
    // worker's round trip before each one would serialise the whole walk.
    // What was read ahead during the fill holds for the bytes read now; or,
    // final (read once the fill was over, or read again then and found the
    // same), for the bytes it holds, which are then not read once more.
    const taken = n.target ? undefined : readAhead?.take(entry.path);
    const data = taken?.final ? taken.bytes : readBounded(file, entry.path, unchanged ? undefined : entry);
    const ahead = taken?.final ? taken : sameBytes(taken, data);
    if (ahead) result.readAhead++;
    if (!unchanged) checkBytes(entry, data, ahead?.digests);
    const text = ahead ? ahead.text : await decompress(opts.repo, data, file, entry.path);
    result.manifests++;
    if (!base) {
      await absorb(parse(text, entry.path), () => false, entry.path, () => false);
      return;
    }
    if (unchanged) {
      await absorb(parse(text, entry.path, deferUnchanged(entry.path, text, () => true)), () => true, entry.path, () => true);
      return;
    }
    // Changed since the base: compared line by line with the base's copy,
    // if the base verified that copy as this Manifest; else every line is new.
    const baseFile = path.join(base.root, entry.path);
    const compared = !baseListed
      ? compareLines(new Set(), entry.path)
      : ahead?.base
        ? compareAhead(text, ahead.base, entry.path)
        : compareLines(
            manifestLines(
              (await Promise.resolve()
                .then(() => decompress(opts.repo, readBounded(baseFile, entry.path), baseFile, entry.path))
                .catch(() => undefined)) ?? '',
            ),
            entry.path,
          );
    const parsed = parse(text, entry.path, deferUnchanged(entry.path, text, compared.isBase));
    noteDisturbed(compared, parsed, entry.path);
    await absorb(parsed, (e) => compared.isBase(e.raw, e.line), entry.path, compared.listed);
  };

  /**
   * For parseManifest: pass over a line of the Manifest at `manifest` that
   * the base's copy had word for word (`isBase`, asked about every line)
   * about the base's file (in a folder not listed, or listed but untouched
   * itself) or a sub-Manifest over a folder that is all the base's; it
   * waits in `deferred`, its path counted as covered, until a changed line
   * speaks of its path (see the loop after the main pass). `text`: the
   * Manifest's, which the lines are cut from again if they are taken out.
   */
  const deferUnchanged = (manifest: string, text: string, isBase: (raw: string, line: number) => boolean) => {
    const manifestFolder = manifestDir(manifest);
    let id: number | undefined;
    // Most lines of a changed Manifest name a file of its own folder (a
    // metadata cache's, hundreds), or a sub-Manifest one folder down (a
    // category's, one per package): where the Manifest's folder was
    // listed, the entry is found by the line's name in it, and asked
    // about by name whether it is disturbed. Worked out once per Manifest,
    // here: the parse follows at once, and nothing is disturbed while a
    // Manifest is parsed (see noteDisturbed).
    const here = unlisted.has(manifestFolder) ? undefined : nodes.inFolder(manifestFolder);
    const disturbedHere = here === undefined ? undefined : disturbedNamesIn(manifestFolder);
    const subsHere = here === undefined ? undefined : walk.notListedIn(manifestFolder);
    return (raw: string, line: number, start: number): boolean => {
      if (!isBase(raw, line) || unlisted.size === 0) return false;
      const named = entryName(raw, manifest);
      if (!named) return false;
      if (here !== undefined && named.tag !== 'MANIFEST' && named.tag !== 'AUX' && !named.name.includes('/')) {
        // The folder was listed: its file, untouched, or the line is parsed.
        const n = here.get(named.name);
        if (n?.kind !== 'file' || n.target !== undefined || touched(n) || disturbedHere?.(named.name)) return false;
        id ??= deferred.manifest(manifest, text);
        deferred.hold(id, line, start, n);
        return true;
      }
      if (named.tag === 'MANIFEST' && subsHere !== undefined) {
        // "MANIFEST pkg/Manifest.gz", pkg a sub-folder the walk did not
        // list: it holds the base's entries, so its sub-Manifest is the
        // file the base verified as one (the line is the base's, word for
        // word), and is there still: no need to ask, as the slow way below
        // does, whether it is a folder. Found by name, and kept by the
        // folder's place in the index, with no path made.
        const slash = named.name.indexOf('/');
        const sub = slash > 0 && named.name.indexOf('/', slash + 1) < 0 ? named.name.slice(0, slash) : undefined;
        const at = sub === undefined ? undefined : subsHere.get(sub);
        if (at !== undefined && places !== undefined) {
          // Untouched below too, not disturbed, and no entry of it kept by
          // the walk: a symlink (resolved anew, to be read anew) or a
          // folder below it that was listed.
          const dir = places.path(at);
          if (dirtyDirs.has(dir) || disturbedHere?.(sub as string) || nodes.inFolder(dir) !== undefined) return false;
          id ??= deferred.manifest(manifest, text);
          deferred.addSubManifestAt(id, line, start, at);
          return true;
        }
      }
      if (named.tag === 'MANIFEST') {
        // Its folder made once, and looked up by that one string.
        const slash = named.name.lastIndexOf('/');
        const dir = slash < 0 ? manifestFolder : join(manifestFolder, named.name.slice(0, slash));
        const file = slash < 0 ? named.name : named.name.slice(slash + 1);
        if (nodes.inFolder(dir)?.has(file) || unlisted.has(join(dir, file)) || subtreeTouched(dir) || isDisturbed(dir)) return false;
        id ??= deferred.manifest(manifest, text);
        deferred.addSubManifest(id, line, start, dir);
        return true;
      }
      const p = join(manifestFolder, named.tag === 'AUX' ? `files/${named.name}` : named.name);
      const n = nodes.get(p);
      if (n ? n.kind !== 'file' || n.target !== undefined || touched(n) : !unlisted.has(parentOf(p) ?? '') || unlisted.has(p)) return false;
      if (isDisturbed(p)) return false;
      id ??= deferred.manifest(manifest, text);
      if (n) deferred.hold(id, line, start, n);
      else deferred.addFile(id, line, start, p);
      return true;
    };
  };


  /** A file's entry checked against bytes already read (`known`: digests of those bytes, by algorithm). */
  const checkBytes = (entry: FileEntry, data: Buffer, known?: Map<string, string>): void => {
    if (data.length !== entry.size) fail(entry.path, `size mismatch: ${data.length} bytes, ${entry.manifest}:${entry.line} says ${entry.size}`);
    const checks = hashChecks(entry.hashes);
    if (typeof checks === 'string') fail(entry.path, `${entry.manifest}:${entry.line} has ${checks}`);
    for (const c of checks as Exclude<typeof checks, string>) {
      if ((known?.get(c.algorithm) ?? createHash(c.algorithm).update(data).digest('hex')) !== c.expected) fail(entry.path, `${c.name} hash mismatch (content differs from ${entry.manifest}:${entry.line})`);
    }
    result.hashed++;
    result.bytesHashed += data.length;
  };

  /**
   * The paths a changed Manifest says something new about, or no longer
   * says what it said: compared line by line with the base's copy (the
   * same line in the same Manifest says the same thing), so unchanged
   * lines cost a lookup, not a parse. After the parse: every line was
   * compared by then.
   */
  const noteDisturbed = (compared: BaseComparison, parsed: ParsedManifest, manifest: string): void => {
    for (const e of parsed.files) if (!compared.isBase(e.raw, e.line)) disturb(e.path);
    for (const e of parsed.ignores) if (!compared.isBase(e.raw, e.line)) disturb(e.path, true);
    const dir = manifestDir(manifest);
    for (const line of compared.gone()) {
      if (line.startsWith('TIMESTAMP') || line.startsWith('DIST')) continue;
      // A file line's path, read without the checks of a parse (the hashes'
      // form, say): only its path matters, and a line the base's copy had
      // passed them when the base was verified. An IGNORE is parsed.
      const head = entryHead(line, manifest, dir);
      if (head) {
        disturb(head.path);
        continue;
      }
      const gone = safeParse(line, manifest);
      for (const e of gone.files) disturb(e.path);
      for (const e of gone.ignores) disturb(e.path, true);
    }
  };

  try {
    let topSameAsBase: (e: FileEntry) => boolean = () => false;
    let topListed: (p: string) => boolean = () => false;
    if (base) {
      // The base's top-level Manifest passed verifyCleartextBytes, which refuses
      // a file whose text differs from what its signature covers: its text
      // is the signed text.
      const baseTop = await fs.readFile(path.join(base.root, 'Manifest'), 'utf8').catch(() => undefined);
      if (baseTop !== undefined) {
        const compared = compareLines(manifestLines(cleartextBody(baseTop)), 'Manifest');
        for (const line of manifestLines(signed.text ?? '')) compared.isBase(line, 0);
        noteDisturbed(compared, topParsed, 'Manifest');
        topSameAsBase = (e) => compared.isBase(e.raw, e.line);
        topListed = compared.listed;
      }
    }
    await absorb(topParsed, topSameAsBase, 'Manifest', topListed);
    // A skipped folder or a deferred line whose coverage a changed Manifest
    // touched is taken in after all; what it brings may touch more. A line
    // is deferred only while its path is not disturbed, so each disturbance
    // needs to wake the lines it concerns once, whenever they were deferred
    // (a disturbance that came before a line was deferred concerns it not).
    let wokenBy = 0;
    let wokenByIgnores = 0;
    for (let again = true; again; ) {
      again = false;
      for (const [m, s] of skipped) {
        if (!isDisturbed(s.dir)) continue;
        skipped.delete(m);
        again = true;
        await readSubManifest(s.entry, true, true);
      }
      const waking: DeferredLine[] = [];
      for (; wokenBy < disturbedOrder.length; wokenBy++) deferred.takeAbout(disturbedOrder[wokenBy] as string, waking);
      for (; wokenByIgnores < ignoresOrder.length; wokenByIgnores++) deferred.takeInside(ignoresOrder[wokenByIgnores] as string, waking);
      for (const d of waking) {
        again = true;
        const entry = parse(d.raw, d.manifest).files[0] as FileEntry;
        entry.line = d.line;
        register(entry);
        if (entry.tag === 'MANIFEST') await readSubManifest(entry, true, true);
        else hashing.push(checkFile(entry, true));
      }
    }
    await Promise.all(hashing);

    // Folders whose Manifest was not read: their files are the base's, all
    // covered, and counted from the folder index.
    const below = (dir: string): number => walk.filesBelow(dir);
    const skippedDirs = new Set<string>();
    for (const s of skipped.values()) {
      skippedDirs.add(s.dir);
      deferredFiles += below(s.dir) - 1; // its Manifest is an entry already
    }
    for (const dir of deferred.manifestFolders()) {
      skippedDirs.add(dir);
      deferredFiles += below(dir);
    }
    deferredFiles += deferred.fileLines();
    result.skippedManifests = skippedDirs.size;
    const under = (p: string, set: Set<string>): boolean => {
      for (let q: string | undefined = p; q !== undefined; q = parentOf(q)) if (set.has(q)) return true;
      return false;
    };
    for (const p of entries.keys()) {
      if (under(p, ignored)) fail(p, `listed in ${entries.get(p)?.manifest} but inside an IGNOREd path`);
    }
    result.files = entries.size + deferredFiles;
    const stray = (p: string, n: Node): never => fail(p, n.odd ?? (n.kind === 'file' ? 'stray file: no Manifest lists it' : 'not a regular file, and not IGNOREd'));
    /** `holder`: the node at `p` in the walk's nodes, where the caller has it. */
    // Deferred lines first: most files of a changed Manifest's folder have one waiting on their node.
    const covered = (p: string, holder?: LineHolder): boolean => p === 'Manifest' || deferred.coversFile(p, holder) || entries.has(p) || under(p, ignored) || under(parentOf(p) ?? '', skippedDirs);
    for (const [dir, entries] of nodes.folders()) {
      for (const [name, n] of entries) {
        if (n.kind === 'dir' || deferred.holds(n)) continue;
        const p = join(dir, name);
        if (!covered(p, n)) stray(p, n);
      }
    }
    // In a folder that was not listed, only a path a changed line spoke of
    // can have lost its coverage (an entry or an IGNORE dropped): a file
    // there, or anything in such a folder below it.
    for (const p of disturbed) {
      if (covered(p)) continue;
      const listed = nodeAt(p);
      const n = listed ?? (unlisted.has(parentOf(p) ?? '') ? statNode(root, p) : undefined);
      if (!n || (listed && n.kind !== 'dir')) continue; // gone, or a listed file the loop above judged
      if (n.kind !== 'dir') stray(p, n);
      for (const f of walk.folders.keys()) {
        if (!unlisted.has(f) || !(f === p || f.startsWith(`${p}/`)) || under(f, skippedDirs)) continue;
        for (const name of listNames(path.join(root, f))) {
          const q = f === '' ? name : `${f}/${name}`;
          const m = nodes.get(q) ?? statNode(root, q);
          if (m && m.kind !== 'dir' && !covered(q)) stray(q, m);
        }
      }
    }
    opts.onFolders?.(walk.folders);
    return result;
  } catch (err) {
    if (failure) throw failure;
    if (err instanceof ManifestSyntaxError) throw new ManifestFailure(err.manifest, `line ${err.line}: ${err.what}`);
    throw err;
  } finally {
    // Settle what is in flight before the pool goes, so no rejection is left unhandled.
    await Promise.allSettled(hashing);
    if (pool !== opts.threads?.pool) await pool.close();
  }
}

/** What fileFor gives for the base's file in a folder that was not listed. */
const UNTOUCHED_FILE: Node = Object.freeze({ kind: 'file', size: -1, ctimeMs: -Infinity });

/** The names in a folder but dot names. */
function listNames(dir: string): string[] {
  return readdirSync(dir).filter((n) => !n.startsWith('.'));
}

/**
 * `p`, marked as handled: a hash that fails while the walk is still queueing
 * others is reported by the Promise.all that collects them, not as an
 * unhandled rejection that would end the process.
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function parse(text: string, manifest: string, skip?: (raw: string, line: number, start: number) => boolean): ParsedManifest {
  try {
    return parseManifest(text, manifest, skip);
  } catch (err) {
    if (err instanceof ManifestSyntaxError) throw new ManifestFailure(err.manifest, `line ${err.line}: ${err.what}`);
    throw err;
  }
}

/** `ahead`, if it was read from exactly the bytes `data`. */
function sameBytes(ahead: ReadAheadManifest | undefined, data: Buffer): ReadAheadManifest | undefined {
  return ahead?.bytes.equals(data) ? ahead : undefined;
}

/** The base's copy was verified when it was made; if it cannot be read now, it says nothing. */
function safeParse(text: string, manifest: string): ParsedManifest {
  try {
    return parseManifest(text, manifest);
  } catch {
    return { files: [], ignores: [] };
  }
}

/**
 * A changed Manifest compared line by line with the base's copy of it (the
 * same line in the same Manifest says the same thing).
 */
interface BaseComparison {
  /** Whether line number `line` (from 1; `raw`, trimmed) is word for word a line of the base's copy. */
  isBase(raw: string, line: number): boolean;
  /** The base copy's lines the Manifest no longer has: asked once every line was compared. */
  gone(): Iterable<string>;
  /** Whether the base's copy has a MANIFEST entry for tree path `p`. */
  listed(p: string): boolean;
}

/** Compared with the base copy's lines as read here: each line looked up, and remembered to tell what is gone. */
function compareLines(baseLines: Set<string>, manifest: string): BaseComparison {
  const seen = new Set<string>();
  return {
    isBase: (raw) => {
      seen.add(raw);
      return baseLines.has(raw);
    },
    gone: function* () {
      for (const l of baseLines) if (!seen.has(l)) yield l;
    },
    listed: listedIn(() => baseLines, manifest),
  };
}

/** Compared as it was read ahead (read-manifest-ahead.ts: from this very text and the base's copy), by line number. */
function compareAhead(text: string, diff: BaseDiff, manifest: string): BaseComparison {
  return {
    isBase: (_raw, line) => diff.inBase[line - 1] === 1,
    gone: () => diff.gone,
    // The base's MANIFEST lines: those gone, and those still here. Asked
    // about a changed MANIFEST line's path, most often that of a package
    // whose sub-Manifest changed, whose old line is among the few gone:
    // the lines still here (a category's hundreds) are looked at only when
    // it is not.
    listed: listedIn(
      () => diff.gone,
      manifest,
      () => text.split('\n').filter((l, i) => diff.inBase[i] === 1 && l.trimStart().startsWith('MANIFEST')).map((l) => l.trim()),
    ),
  };
}

/**
 * Whether `lines()`, or else `more()`, (a Manifest's at tree path
 * `manifest`) hold a MANIFEST entry for tree path `p`.
 */
function listedIn(lines: () => Iterable<string>, manifest: string, more?: () => Iterable<string>): (p: string) => boolean {
  let listed: Set<string> | undefined;
  let rest = more;
  const take = (from: Iterable<string>, into: Set<string>): Set<string> => {
    for (const line of from) {
      if (!line.startsWith('MANIFEST')) continue;
      const head = entryHead(line, manifest);
      if (head?.tag === 'MANIFEST') into.add(head.path);
    }
    return into;
  };
  return (p) => {
    // Made when first asked: most changed Manifests are never asked.
    listed ??= take(lines(), new Set());
    if (listed.has(p) || rest === undefined) return listed.has(p);
    take(rest(), listed);
    rest = undefined;
    return listed.has(p);
  };
}

/**
 * A Manifest file's bytes, refused before they are read if it is not a
 * regular file, is larger than any Manifest should be, or (given its entry)
 * is not the size the entry says: a huge file listed as a sub-Manifest must
 * not be read into memory to find that out.
 */
function readBounded(file: string, shown: string, entry?: FileEntry): Buffer {
  try {
    return readRegularFile(file, (st) => {
      if (entry && st.size !== entry.size) throw new ManifestFailure(shown, `size mismatch: ${st.size} bytes, ${entry.manifest}:${entry.line} says ${entry.size}`);
      if (st.size > MAX_MANIFEST_BYTES) throw new ManifestFailure(shown, 'larger than any Manifest should be');
    });
  } catch (err) {
    if (err instanceof NotReadable) throw new ManifestFailure(shown, err.message);
    throw err;
  }
}


/** A sub-Manifest's text, decompressed by its suffix as GLEP 61 names them. */
async function decompress(repo: string, data: Buffer, file: string, shown: string): Promise<string> {
  const tool = (args: string[], name: string) => async (): Promise<Buffer> => {
    const end = await decompressors.run(() => runProcess(args[0] as string, [...args.slice(1), '--', file], { missing: { repo, tool: name } }));
    if (end.code !== 0) throw new ManifestFailure(shown, `cannot be decompressed (${end.stderr.trim().split('\n').pop() ?? `exit ${end.code}`})`);
    return end.stdout;
  };
  const readers: Array<[string, () => Promise<Buffer>]> = [
    ['.gz', async () => unzip(data, shown)],
    // The tools read the file, whose bytes were just checked: staging is
    // private to this update, so they are the same bytes.
    ['.bz2', tool(['bzip2', '-dc'], 'bzip2')],
    ['.xz', tool(['xz', '-dc'], 'xz')],
    ['.lzma', tool(['xz', '--format=lzma', '-dc'], 'xz')],
    ['.zst', tool(['zstd', '-dcq'], 'zstd')],
  ];
  const reader = readers.find(([suffix]) => shown.endsWith(suffix))?.[1];
  const text = reader ? await reader() : data;
  if (text.length > MAX_MANIFEST_BYTES) throw new ManifestFailure(shown, 'larger than any Manifest should be');
  return manifestText(text);
}

function unzip(data: Buffer, shown: string): Buffer {
  try {
    return inflateGzip(data);
  } catch (err) {
    throw new ManifestFailure(shown, `cannot be decompressed (${(err as Error).message})`);
  }
}
