/**
 * The Manifest file format of GLEP 74 (which extends GLEP 44's): one entry
 * a line, `TAG path size HASH value HASH value ...`, paths relative to the
 * Manifest's own folder. Parsing is strict: a verifier that skips a line it
 * does not understand could skip the line that matters, so an unknown tag, a
 * malformed size or hash, or a path that leaves its folder is an error
 * naming the Manifest and the line.
 *
 * Entries come out with paths relative to the top of the tree, so the
 * verifier never joins paths itself.
 */
import path from 'node:path';

/** Tags that describe a file of the tree: it must be present and match. */
export type FileTag = 'MANIFEST' | 'DATA' | 'MISC' | 'EBUILD' | 'AUX';

export interface FileEntry {
  tag: FileTag;
  /** Tree-relative path ("/"-separated, never empty, no "." or ".."). */
  path: string;
  size: number;
  /** Hash name (as written, e.g. BLAKE2B) -> lowercase hex digest. */
  hashes: Map<string, string>;
  /** Tree-relative path of the Manifest that says it, and the line. */
  manifest: string;
  line: number;
  /** The line as written (trimmed): two Manifests of one folder saying the same line say the same thing. */
  raw: string;
}

export interface IgnoreEntry {
  /** Tree-relative path of a file or folder left out of verification. */
  path: string;
  manifest: string;
  line: number;
  raw: string;
}

export interface ParsedManifest {
  /** TIMESTAMP, where the Manifest has one. */
  timestamp?: Date;
  files: FileEntry[];
  ignores: IgnoreEntry[];
}

/** A Manifest that cannot be read as GLEP 74 says. */
export class ManifestSyntaxError extends Error {
  constructor(
    readonly manifest: string,
    readonly line: number,
    readonly what: string,
  ) {
    super(`${manifest}:${line}: ${what}`);
  }
}

/** The most common first: DATA is nearly every line of a Gentoo tree's Manifests. */
const FILE_TAG_LIST: readonly FileTag[] = ['DATA', 'MANIFEST', 'MISC', 'EBUILD', 'AUX'];
const FILE_TAGS = new Set<string>(FILE_TAG_LIST);
const TIMESTAMP_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

/**
 * Parse the text of the Manifest at tree-relative path `manifest`. DIST
 * entries (distfiles, not part of the tree) are left out; a TIMESTAMP is
 * read wherever it is (the caller decides what a sub-Manifest's means).
 * Lines (trimmed) for which `skip` says so are passed over unparsed: an
 * incremental verification looks at some lines only if it has to. `skip`
 * is given the line, its number (from 1) and where it starts in `text`.
 */
export function parseManifest(text: string, manifest: string, skip?: (raw: string, line: number, start: number) => boolean): ParsedManifest {
  const dir = manifestDir(manifest);
  const out: ParsedManifest = { files: [], ignores: [] };
  const lines = text.split('\n');
  for (let i = 0, start = 0; i < lines.length; start += (lines[i] as string).length + 1, i++) {
    const lineNo = i + 1;
    const raw = lines[i] as string;
    const trimmed = raw.trim();
    if (trimmed === '' || skip?.(trimmed, lineNo, start)) continue;
    const fail = (what: string): never => {
      throw new ManifestSyntaxError(manifest, lineNo, what);
    };
    const fields = raw.split(/[ \t]+/).filter((f) => f !== '');
    const tag = fields[0] as string;
    if (tag === 'TIMESTAMP') {
      if (fields.length !== 2) fail('TIMESTAMP takes one value');
      if (out.timestamp) fail('a second TIMESTAMP');
      out.timestamp = parseTimestamp(fields[1] as string) ?? fail(`TIMESTAMP "${fields[1]}" is not of the form 2017-10-30T10:11:12Z`);
      continue;
    }
    if (tag === 'DIST') continue;
    if (tag === 'IGNORE') {
      if (fields.length !== 2) fail('IGNORE takes one path');
      out.ignores.push({ path: treePath(dir, decodePath(fields[1] as string, fail), fail), manifest, line: lineNo, raw: trimmed });
      continue;
    }
    if (!FILE_TAGS.has(tag)) fail(`unknown entry type "${tag}"`);
    if (fields.length < 5 || fields.length % 2 === 0) fail(`${tag} needs a path, a size and hash name/value pairs`);
    const rel = decodePath(fields[1] as string, fail);
    const sizeText = fields[2] as string;
    if (!/^\d{1,15}$/.test(sizeText)) fail(`size "${sizeText}" is not a whole number`);
    const hashes = new Map<string, string>();
    for (let f = 3; f < fields.length; f += 2) {
      const name = fields[f] as string;
      const value = (fields[f + 1] as string).toLowerCase();
      if (!/^[A-Z0-9_]+$/.test(name)) fail(`"${name}" is not a hash name`);
      if (!/^[0-9a-f]+$/.test(value) || value.length % 2 !== 0) fail(`the ${name} value is not hexadecimal`);
      if (hashes.has(name) && hashes.get(name) !== value) fail(`two different ${name} values`);
      hashes.set(name, value);
    }
    // AUX is the old way of naming a file under files/.
    const entryPath = treePath(dir, tag === 'AUX' ? `files/${rel}` : rel, fail);
    out.files.push({ tag: tag as FileTag, path: entryPath, size: Number(sizeText), hashes, manifest, line: lineNo, raw: trimmed });
  }
  return out;
}

/**
 * The tag and tree-relative path of a file entry's line, read without
 * checking the rest of it: for a line known to parse (the same line, in
 * the same Manifest, parsed when the base snapshot was verified).
 * Undefined for any other line, or one that does not read as an entry.
 * `dir`: the Manifest's folder (manifestDir), for a caller that asks about
 * many lines of one Manifest.
 */
export function entryHead(raw: string, manifest: string, dir = manifestDir(manifest)): { tag: FileTag; path: string } | undefined {
  const head = entryName(raw, manifest);
  if (!head) return undefined;
  const rel = head.tag === 'AUX' ? `files/${head.name}` : head.name;
  return { tag: head.tag, path: dir === '' ? rel : `${dir}/${rel}` };
}

/**
 * What entryHead reads, before the path is made: the tag, and the path as
 * the line gives it (relative to the Manifest's folder; an AUX entry's
 * without its "files/"). A caller that finds most lines name a file of the
 * Manifest's own folder looks that name up there, with no path made.
 */
export function entryName(raw: string, manifest: string): { tag: FileTag; name: string } | undefined {
  // By hand, not by regular expression: it runs for every unchanged line of
  // a changed Manifest, tens of thousands of them in a metadata cache's.
  let i = 0;
  while (i < raw.length && !isBlank(raw.charCodeAt(i))) i++;
  const tag = fileTagOf(raw, i);
  if (tag === undefined) return undefined;
  while (i < raw.length && isBlank(raw.charCodeAt(i))) i++;
  const start = i;
  while (i < raw.length && !isBlank(raw.charCodeAt(i))) i++;
  if (i === start) return undefined;
  let name = raw.slice(start, i);
  if (name.includes('\\')) {
    try {
      name = decodePath(name, () => {
        throw new ManifestSyntaxError(manifest, 0, 'not an entry');
      });
    } catch {
      return undefined;
    }
  }
  return { tag, name };
}

/**
 * The file tag `raw` starts with, `length` characters long; undefined if it
 * is none. Compared in place: cutting the tag out as a string of its own
 * and looking it up cost an allocation and a hash for every line.
 */
function fileTagOf(raw: string, length: number): FileTag | undefined {
  for (const tag of FILE_TAG_LIST) if (tag.length === length && raw.startsWith(tag)) return tag;
  return undefined;
}

/** A space or a tab: what separates a Manifest line's fields. */
function isBlank(code: number): boolean {
  return code === 32 || code === 9;
}

/** The tree-relative folder of the Manifest at tree-relative path `manifest` ('' at the top). */
export function manifestDir(manifest: string): string {
  const dir = path.posix.dirname(manifest);
  return dir === '.' ? '' : dir;
}

/** A GLEP 74 timestamp, second precision, UTC. */
export function parseTimestamp(text: string): Date | undefined {
  const m = TIMESTAMP_RE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls over (Feb 30 -> Mar 2); a timestamp that does is not one.
  if (t.getUTCFullYear() !== y || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d || h > 23 || mi > 59 || s > 59) return undefined;
  return t;
}

export function formatTimestamp(t: Date): string {
  return `${t.toISOString().slice(0, 19)}Z`;
}

/** Undo GLEP 74's path escapes (\xHH, \uHHHH, \UHHHHHHHH); any other backslash is an error. */
function decodePath(field: string, fail: (what: string) => never): string {
  if (!field.includes('\\')) return field;
  return field.replace(/\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))/g, (_m, x?: string, u?: string, U?: string, other?: string) => {
    if (other !== undefined) fail(`bad escape in path "${field}"`);
    const code = parseInt((x ?? u ?? U) as string, 16);
    if (code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) fail(`bad escape in path "${field}"`);
    return String.fromCodePoint(code);
  });
}

/**
 * `rel` (relative to the Manifest's folder `dir`) as a tree-relative path.
 * GLEP 74 forbids leaving the folder; empty, "." and ".." components and
 * absolute paths are refused, so every entry names one place inside the
 * Manifest's own subtree.
 */
function treePath(dir: string, rel: string, fail: (what: string) => never): string {
  if (rel === '' || rel.startsWith('/') || rel.endsWith('/')) fail(`path "${rel}" is not a relative path`);
  for (const part of rel.split('/')) {
    if (part === '' || part === '.' || part === '..') fail(`path "${rel}" leaves or names its folder oddly`);
    if (part.includes('\0')) fail(`path "${rel}" holds a NUL`);
  }
  return dir === '' ? rel : `${dir}/${rel}`;
}

/** The non-empty lines of a Manifest's text, trimmed: what `raw` is compared against. */
export function manifestLines(text: string): Set<string> {
  const lines = new Set<string>();
  for (const l of text.split('\n')) {
    const t = l.trim();
    if (t !== '') lines.add(t);
  }
  return lines;
}

/** Whether tree-relative `p` is `prefix` or inside it. */
export function within(p: string, prefix: string): boolean {
  return prefix === '' || p === prefix || p.startsWith(`${prefix}/`);
}

/**
 * The text of an OpenPGP cleartext-signed message, without checking the
 * signature: for a Manifest whose signature was checked when its snapshot
 * was made (the base of an incremental verification). verifyCleartextBytes
 * refuses a file for which this differs from what gpg says is signed, so
 * for a verified file it is the signed text. Unsigned text is returned as
 * it is.
 */
export function cleartextBody(text: string): string {
  const begin = '-----BEGIN PGP SIGNED MESSAGE-----';
  if (!text.startsWith(begin)) return text;
  const lines = text.split('\n');
  let i = 1;
  while (i < lines.length && (lines[i] as string).trim() !== '') i++; // armor headers (Hash: ...)
  const body: string[] = [];
  for (i++; i < lines.length; i++) {
    const l = (lines[i] as string).replace(/\r$/, '');
    // gpg takes the armor line with trailing blanks too, and so must we.
    if (l.replace(/[ \t]+$/, '') === '-----BEGIN PGP SIGNATURE-----') break;
    body.push(l.startsWith('- ') ? l.slice(2) : l);
  }
  return body.join('\n');
}

/** Text compared as signed text is: trailing blanks and CRs of each line, and trailing empty lines, do not count. */
export function normaliseSigned(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/[ \t\r]+$/, ''))
    .join('\n')
    .replace(/\n+$/, '');
}
