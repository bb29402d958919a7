/**
 * Signed Gentoo-style trees for tests and benchmarks: GLEP 74 Manifests
 * written the way Gentoo's rsync mirror has them, and GnuPG keys to sign
 * the top-level one with.
 *
 * Layout, as on the mirror (gemato's MetaManifest generator):
 * - every directory two levels down (`cat/pkg`) has a `Manifest` with a DATA
 *   entry for every file below it, but those of `eclass`, `licenses` and
 *   `profiles`, which hold no packages: their top-level Manifest covers
 *   them;
 * - but under `metadata`, the directories two levels down (`md5-cache`,
 *   `glsa`, ...) and those of `metadata/md5-cache` (`md5-cache/cat`) each
 *   have a `Manifest.gz` (or `Manifest`): the metadata cache, one file per
 *   ebuild, is covered category by category;
 * - every top-level directory (`cat`) has a `Manifest.gz` (or `Manifest`);
 * - a Manifest has a MANIFEST entry for each Manifest of the directories
 *   below it that have one, and DATA entries for the other files below it;
 * - the top-level `Manifest` has TIMESTAMP, the IGNORE entries, a MANIFEST
 *   entry per top-level directory and DATA entries for top-level files, and
 *   is clearsigned when a key is given.
 *
 * Sub-Manifests whose content did not change are not rewritten, as on the
 * mirror. Only node built-ins and the gpg binary are used, so that vitest
 * tests, the torture suite and benchmark scripts can all load it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import fsc, { mkdirSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const gzip = promisify(zlib.gzip);
// The callback API, promisified, for the per-file calls: on trees of 100k
// small files, fs/promises' FileHandles made hashing two to three times slower.
const open = promisify(fsc.open);
const read = promisify(fsc.read);
const close = promisify(fsc.close);
const writeFileAsync = promisify(fsc.writeFile);
const readFileAsync = promisify(fsc.readFile);

/**
 * Write a sub-Manifest only if its content changed: the mirror leaves an
 * unchanged Manifest alone (same bytes, same mtime), so a sync transfers the
 * Manifests of what changed, not all of them.
 */
async function writeFile(file: string, body: Buffer): Promise<void> {
  const old = await readFileAsync(file).catch(() => undefined);
  if (old?.equals(body)) return;
  await writeFileAsync(file, body);
}
const unlink = promisify(fsc.unlink);

export interface SigningKey {
  home: string;
  fpr: string;
  pub: string;
}

const homes: string[] = [];

/** A fresh ed25519 signing key in a GnuPG home of its own under `dir`; `pub` is the armored public key file. */
export function makeSigningKey(dir: string, name: string): SigningKey {
  const home = path.join(dir, `gnupg-${name}`);
  // gpg refuses (or warns about) a home that others can read.
  mkdirSync(home, { mode: 0o700 });
  homes.push(home);
  const gpg = (...args: string[]): string =>
    execFileSync('gpg', ['--homedir', home, '--batch', '--no-tty', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  gpg('--passphrase', '', '--quick-gen-key', `${name} <${name}@example.org>`, 'ed25519', 'sign', 'never');
  const fpr = /^fpr:+([0-9A-F]+):/m.exec(gpg('--with-colons', '--list-keys'))?.[1];
  if (!fpr) throw new Error(`gpg made no key in ${home}`);
  const pub = path.join(dir, `${name}.asc`);
  writeFileSync(pub, gpg('--armor', '--export', fpr));
  return { home, fpr, pub };
}

/** Stop the gpg-agents of every key made (call from afterAll). */
export function forgetKeys(): void {
  // An agent left running keeps its home's sockets and outlives the test run.
  for (const home of homes.splice(0)) {
    try {
      execFileSync('gpgconf', ['--homedir', home, '--kill', 'all'], { stdio: 'ignore' });
    } catch {
      // The home is gone already, or no agent ever started: nothing to stop.
    }
  }
}

export interface ManifestOptions {
  /** Clearsign the top-level Manifest with it; unsigned when absent. */
  key?: SigningKey;
  /** TIMESTAMP of the top-level Manifest (default: now), to the second. */
  timestamp?: Date;
  /** Top-level directories' sub-Manifests as Manifest.gz (default true) or plain Manifest. */
  compress?: boolean;
  /** Manifest hash names, written in this order (default BLAKE2B, SHA512). */
  hashes?: string[];
  /** IGNORE entries of the top-level Manifest: paths whose files are left out. */
  ignore?: string[];
  /** Files and folders worked on at once (default 64). */
  concurrency?: number;
  /**
   * Lines written as they are at the end of the Manifest of each folder
   * named ('' is the top level; the folder must have a Manifest of its
   * own): a tree whose Manifests say odd things on purpose.
   */
  extra?: Record<string, string[]>;
}

/** GLEP 74 hash names and node:crypto's names for them. */
const HASHES: Record<string, string> = {
  MD5: 'md5',
  SHA1: 'sha1',
  SHA256: 'sha256',
  SHA512: 'sha512',
  RMD160: 'ripemd160',
  BLAKE2B: 'blake2b512',
  BLAKE2S: 'blake2s256',
  SHA3_256: 'sha3-256',
  SHA3_512: 'sha3-512',
};

/** Every file is read in chunks of this size: memory stays bounded whatever the file sizes. */
const CHUNK = 64 << 10;
/** Chunk buffers not in use, so that 100k files do not mean 100k allocations. */
const spare: Buffer[] = [];

interface Entry {
  tag: 'DATA' | 'MANIFEST' | 'IGNORE' | 'TIMESTAMP';
  /** Relative to the Manifest's directory, `/`-separated, not yet escaped. */
  path: string;
  /** `size HASH hex ...`, or the TIMESTAMP value. */
  rest: string;
}

/**
 * A path as GLEP 74 writes it: whitespace, backslashes and control
 * characters would break the whitespace-separated line, so they become
 * \xHH, \uHHHH or \UHHHHHHHH by code point.
 */
export function escapeManifestPath(p: string): string {
  return p.replace(/[\p{Cc}\s\\]/gu, (c) => {
    const cp = c.codePointAt(0) as number;
    const hex = cp.toString(16).toUpperCase();
    if (cp <= 0x7f) return `\\x${hex.padStart(2, '0')}`;
    if (cp <= 0xffff) return `\\u${hex.padStart(4, '0')}`;
    return `\\U${hex.padStart(8, '0')}`;
  });
}

/** Entries in gemato's order: by tag, then by path in code point (UTF-8 byte) order, the same on every platform and locale. */
function render(entries: Entry[]): string {
  const order = ['DATA', 'IGNORE', 'MANIFEST', 'TIMESTAMP'];
  const keyed = entries.map((e) => ({ e, tag: order.indexOf(e.tag), key: Buffer.from(e.path) }));
  keyed.sort((a, b) => a.tag - b.tag || Buffer.compare(a.key, b.key));
  return keyed.map(({ e }) => e).map((e) => (e.tag === 'TIMESTAMP' ? `TIMESTAMP ${e.rest}\n` : `${e.tag} ${escapeManifestPath(e.path)}${e.rest ? ` ${e.rest}` : ''}\n`)).join('');
}

/** Run `fn` over `items` with at most `limit` calls in flight, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

class Digester {
  private readonly hashes: Array<[string, Hash]>;
  size = 0;
  constructor(names: readonly string[]) {
    this.hashes = names.map((n) => [n, createHash(HASHES[n] as string)]);
  }
  update(b: Buffer): void {
    this.size += b.length;
    for (const [, h] of this.hashes) h.update(b);
  }
  /** `size NAME hex NAME hex ...` as an entry has it. */
  line(): string {
    return [String(this.size), ...this.hashes.flatMap(([n, h]) => [n, h.digest('hex')])].join(' ');
  }
}

function digestBytes(names: readonly string[], b: Buffer): string {
  const d = new Digester(names);
  d.update(b);
  return d.line();
}

async function digestFile(names: readonly string[], file: string): Promise<string> {
  const d = new Digester(names);
  const buf = spare.pop() ?? Buffer.allocUnsafe(CHUNK);
  const fd = await open(file, 'r');
  try {
    for (;;) {
      const { bytesRead } = await read(fd, buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      d.update(buf.subarray(0, bytesRead));
    }
  } finally {
    spare.push(buf);
    await close(fd);
  }
  return d.line();
}

/** A path of the top-level Manifest's IGNORE entries, normalized; refused if it could not name a path in the tree. */
function ignorePath(p: string): string {
  const n = path.posix.normalize(p).replace(/\/+$/, '');
  if (n === '' || n === '.' || n.startsWith('/') || n === '..' || n.startsWith('../')) throw new Error(`IGNORE path ${JSON.stringify(p)} is not a relative path inside the tree`);
  return n;
}

/**
 * The Manifest this kit writes in the directory `rel` (`depth` levels
 * down; '' is the root), or undefined where the Manifest of a directory
 * above covers it (see the header).
 */
function manifestOf(rel: string, depth: number, compressed: string): string | undefined {
  if (depth === 0) return 'Manifest';
  if (depth === 1) return compressed;
  if (rel.startsWith('metadata/')) return depth === 2 || (depth === 3 && rel.startsWith('metadata/md5-cache/')) ? compressed : undefined;
  return depth === 2 && !NOT_PACKAGES.has(rel.slice(0, rel.indexOf('/'))) ? 'Manifest' : undefined;
}

/** Top-level directories whose sub-directories are not packages (they get no Manifest of their own). */
const NOT_PACKAGES = new Set(['eclass', 'licenses', 'profiles']);

/**
 * The names taken for a directory's own Manifest (never listed as data):
 * where it may be compressed, both, so that switching leaves no stale one.
 */
function ownNames(own: string | undefined, depth: number): readonly string[] {
  if (own === undefined) return [];
  return depth === 0 || (own === 'Manifest' && depth === 2) ? ['Manifest'] : ['Manifest', 'Manifest.gz'];
}

interface FileItem {
  /** Relative to the root, `/`-separated. */
  rel: string;
  /** What to read: the file, or a symlink's target inside the tree. */
  abs: string;
}

/** (Re)write the Manifest tree of `root` as Gentoo's rsync tree has it. */
export async function writeManifests(root: string, opts: ManifestOptions = {}): Promise<void> {
  const names = opts.hashes ?? ['BLAKE2B', 'SHA512'];
  if (names.length === 0) throw new Error('writeManifests: no hashes');
  for (const n of names) if (!(n in HASHES)) throw new Error(`writeManifests: unknown hash ${n} (known: ${Object.keys(HASHES).join(', ')})`);
  if (new Set(names).size !== names.length) throw new Error(`writeManifests: a hash is named twice in ${names.join(' ')}`);
  const ignored = new Set((opts.ignore ?? []).map(ignorePath));
  const compress = opts.compress ?? true;
  const categoryManifest = compress ? 'Manifest.gz' : 'Manifest';
  const limit = Math.max(1, opts.concurrency ?? 64);
  const realRoot = await fs.realpath(root);
  const extraLines = (dir: string): string => (opts.extra?.[dir] ?? []).map((l) => `${l}\n`).join('');

  const isIgnored = (rel: string): boolean => {
    if (ignored.size === 0) return false;
    for (let p = rel; p !== '.' && p !== ''; p = path.posix.dirname(p)) if (ignored.has(p)) return true;
    return false;
  };

  // Walk level by level so that many directories are read at once.
  const files: FileItem[] = [];
  const symlinks: FileItem[] = [];
  const stale: string[] = [];
  /** Directories with a Manifest of their own (the root too), and its name. */
  const owners = new Map<string, string>([['', 'Manifest']]);
  let level: Array<{ rel: string; depth: number }> = [{ rel: '', depth: 0 }];
  while (level.length > 0) {
    const below = await mapLimit(level, limit, async ({ rel, depth }) => {
      const dir = path.join(realRoot, rel);
      const found: Array<{ rel: string; depth: number }> = [];
      const own = manifestOf(rel, depth, categoryManifest);
      for (const e of await fs.readdir(dir, { withFileTypes: true })) {
        // GLEP 74: names starting with a dot are never covered.
        if (e.name.startsWith('.')) continue;
        const r = rel ? `${rel}/${e.name}` : e.name;
        const abs = path.join(dir, e.name);
        if (isIgnored(r)) continue;
        if (e.isDirectory()) {
          found.push({ rel: r, depth: depth + 1 });
          const sub = manifestOf(r, depth + 1, categoryManifest);
          if (sub !== undefined) owners.set(r, sub);
        } else if ((e.isFile() || e.isSymbolicLink()) && ownNames(own, depth).includes(e.name)) {
          // A Manifest written before is never listed as data. It is
          // overwritten in place unless it is a symlink (the write would go
          // through it) or the variant this run does not write.
          if (e.isSymbolicLink() || e.name !== own) stale.push(abs);
        } else if (e.isFile()) files.push({ rel: r, abs });
        else if (e.isSymbolicLink()) symlinks.push({ rel: r, abs });
        else throw new Error(`writeManifests: ${abs} is neither a file, a directory nor a symlink`);
      }
      return found;
    });
    level = below.flat();
  }

  for (const dir of Object.keys(opts.extra ?? {})) if (!owners.has(dir)) throw new Error(`writeManifests: no Manifest of its own in ${JSON.stringify(dir)} for the extra lines`);

  // A symlink stands for its target's content; only links to regular files
  // inside the tree are allowed, so that a tree means the same wherever it is.
  await mapLimit(symlinks, limit, async (l) => {
    let target: string;
    try {
      target = await fs.realpath(l.abs);
    } catch (err) {
      throw new Error(`writeManifests: symlink ${l.abs} does not resolve (${(err as NodeJS.ErrnoException).code})`);
    }
    if (!target.startsWith(realRoot + path.sep)) throw new Error(`writeManifests: symlink ${l.abs} points outside the tree, to ${target}`);
    if (!(await fs.stat(target)).isFile()) throw new Error(`writeManifests: symlink ${l.abs} points to ${target}, which is not a regular file`);
    files.push({ rel: l.rel, abs: target });
  });

  await mapLimit(stale, limit, (p) => unlink(p));

  const digests = await mapLimit(files, limit, (f) => digestFile(names, f.abs));

  // Sort each file's entry into the Manifest that covers it: the one of the
  // nearest directory above it that has one.
  const ownerOf = (rel: string): string => {
    for (let d = path.posix.dirname(rel); ; d = path.posix.dirname(d)) {
      if (d === '.') return '';
      if (owners.has(d)) return d;
    }
  };
  const relativeTo = (dir: string, rel: string): string => (dir === '' ? rel : rel.slice(dir.length + 1));
  const entries = new Map<string, Entry[]>([...owners.keys()].map((d) => [d, []]));
  files.forEach((f, i) => {
    const dir = ownerOf(f.rel);
    entries.get(dir)?.push({ tag: 'DATA', path: relativeTo(dir, f.rel), rest: digests[i] as string });
  });

  // Deepest first: a Manifest's hash goes into the one above it.
  const depthOf = (d: string): number => (d === '' ? 0 : d.split('/').length);
  const subs = [...owners.keys()].filter((d) => d !== '');
  for (let depth = Math.max(0, ...subs.map(depthOf)); depth > 0; depth--) {
    await mapLimit(
      subs.filter((d) => depthOf(d) === depth),
      limit,
      async (dir) => {
        const name = owners.get(dir) as string;
        const text = Buffer.from(render(entries.get(dir) ?? []) + extraLines(dir));
        // Hashed as stored: the compressed bytes, as GLEP 74 has it.
        const body = name.endsWith('.gz') ? await gzip(text) : text;
        await writeFile(path.join(realRoot, dir, name), body);
        const parent = ownerOf(dir);
        entries.get(parent)?.push({ tag: 'MANIFEST', path: relativeTo(parent, `${dir}/${name}`), rest: digestBytes(names, body) });
      },
    );
  }

  const top = entries.get('') as Entry[];
  for (const p of ignored) top.push({ tag: 'IGNORE', path: p, rest: '' });
  const when = opts.timestamp ?? new Date();
  top.push({ tag: 'TIMESTAMP', path: '', rest: `${when.toISOString().slice(0, 19)}Z` });
  const text = render(top) + extraLines('');
  await fs.writeFile(path.join(realRoot, 'Manifest'), opts.key ? await clearsign(opts.key, text) : text);
}

/** `text` clearsigned with `key` by gpg, as the top-level Manifest is published. */
function clearsign(key: SigningKey, text: string): Promise<Buffer> {
  const args = ['--homedir', key.home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', '--passphrase', '', '--local-user', key.fpr, '--clearsign'];
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`gpg --clearsign failed (${code}): ${err.trim()}`))));
    // A gpg that dies early closes its input; its exit status says why.
    child.stdin.on('error', () => undefined);
    child.stdin.end(text);
  });
}
