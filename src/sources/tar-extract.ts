/**
 * Extracting an untrusted archive into an empty directory.
 *
 * node-tar runs with its protections on (no absolute paths, no `..`, nothing
 * written through a symlink, owners not taken from the archive, strict: every
 * warning is an error). On top of that every entry is checked here, and any
 * of these fails the extraction rather than being skipped: an absolute path,
 * a `..` component, a symlink that is absolute or points outside the tree, a
 * hardlink to outside the tree, an entry below a symlink the archive made, a
 * device file, a FIFO or any other special type.
 *
 * gzip is unpacked by node:zlib, xz and zstd by the system's xz and zstd
 * (Node 20's zlib has neither), chosen by the file's magic bytes. What the
 * decompressor yields is counted before node-tar sees it: an archive that
 * unpacks to more than the limits allow (an absolute size, and a ratio to
 * the archive's size) is stopped there, before it fills the filesystem.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import type { ReadEntry } from 'tar';
import type { TarballLimits } from './tarball-limits.js';
import { errnoCode, ReposnapError } from '../errors.js';
import { trackChild } from '../util/children.js';

const ALLOWED = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'SymbolicLink', 'Link']);

type Compression = 'gzip' | 'xz' | 'zstd' | 'none';

export async function detectCompression(file: string): Promise<Compression> {
  const fh = await fs.open(file, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(6), 0, 6, 0);
    const b = buffer.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
    if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
    return 'none';
  } finally {
    await fh.close();
  }
}

/** Why an entry is refused, or undefined when it is fine. */
export function refusal(entryPath: string, type: string, linkpath: string | undefined, symlinks: Set<string>): string | undefined {
  if (!ALLOWED.has(type)) return `${type} entries (devices, FIFOs...) are not allowed`;
  if (entryPath.startsWith('/')) return 'absolute path';
  const norm = path.posix.normalize(entryPath).replace(/\/+$/, '');
  if (norm.split('/').includes('..')) return 'path leaves the tree (..)';
  const parts = norm.split('/');
  for (let i = 1; i < parts.length; i++) {
    if (symlinks.has(parts.slice(0, i).join('/'))) return `written through the symlink ${parts.slice(0, i).join('/')}`;
  }
  if (type === 'SymbolicLink' || type === 'Link') {
    const target = linkpath ?? '';
    if (target === '' || target.startsWith('/')) return `${type === 'Link' ? 'hardlink' : 'symlink'} to an absolute path ${JSON.stringify(target)}`;
    const resolved = type === 'SymbolicLink' ? path.posix.normalize(path.posix.join(path.posix.dirname(norm), target)) : path.posix.normalize(target);
    if (resolved === '..' || resolved.startsWith('../')) return `${type === 'Link' ? 'hardlink' : 'symlink'} points outside the tree (${target})`;
    if (type === 'Link') {
      const lp = resolved.split('/');
      for (let i = 1; i <= lp.length; i++) if (symlinks.has(lp.slice(0, i).join('/'))) return `hardlink through the symlink ${lp.slice(0, i).join('/')}`;
    }
  }
  return undefined;
}

/** Whatever the ratio, an archive may always unpack to this much (small trees compress very well). */
const RATIO_FLOOR = 64 * 1024 * 1024;

/** The most `archiveBytes` of archive may unpack to under `limits`. */
export function unpackLimit(archiveBytes: number, limits: TarballLimits): number {
  const byRatio = limits.maxRatio > 0 ? Math.max(limits.maxRatio * archiveBytes, RATIO_FLOOR) : Number.POSITIVE_INFINITY;
  return Math.min(limits.maxUnpacked, byRatio);
}

/** Counts what passes and fails once it exceeds `limit`. */
function byteLimit(repo: string, limit: number, archiveBytes: number): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      total += chunk.length;
      if (total > limit) {
        done(new ReposnapError('EUNSAFE', `repo ${repo}: the archive (${archiveBytes} bytes) unpacks to more than ${limit} bytes (sync-tarball-max-unpacked-size, sync-tarball-max-ratio); refusing it, nothing is kept`));
      } else {
        done(null, chunk);
      }
    },
  });
}

/** Extract `file` into the empty directory `dest`. */
export async function extractArchive(repo: string, file: string, dest: string, limits: TarballLimits): Promise<{ entries: number }> {
  const symlinks = new Set<string>();
  let refused: string | undefined;
  let entries = 0;
  // Loaded here, not at start-up: only tarball and webrsync syncs need it.
  const { extract } = await import('tar');
  const unpack = extract({
    cwd: dest,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    // Entries are checked before anything is written; the first refusal stops
    // the sync (the rest is skipped and the directory thrown away).
    filter: (p: string, entry: unknown) => {
      const e = entry as ReadEntry;
      if (refused) return false;
      const why = refusal(p, e.type, e.linkpath, symlinks);
      if (why) {
        refused = `${JSON.stringify(p)}: ${why}`;
        return false;
      }
      const norm = path.posix.normalize(p).replace(/\/+$/, '');
      if (e.type === 'SymbolicLink') symlinks.add(norm);
      else symlinks.delete(norm);
      entries++;
      return true;
    },
  });

  // Two zero blocks end every tar archive. Without them, an uncompressed
  // archive cut short at a header boundary would extract "fine" as a
  // smaller tree, and the commit would delete everything after the cut.
  let sawEnd = false;
  unpack.on('eof', () => (sawEnd = true));
  const compression = await detectCompression(file);
  const archiveBytes = (await fs.stat(file)).size;
  const counted = byteLimit(repo, unpackLimit(archiveBytes, limits), archiveBytes);
  try {
    if (compression === 'xz' || compression === 'zstd') {
      const tool = compression === 'xz' ? 'xz' : 'zstd';
      const child = spawn(tool, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
      trackChild(child);
      let stderr = '';
      (child.stderr as Readable).setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<number | null>((resolve, reject) => {
        child.on('error', reject);
        child.on('close', resolve);
      });
      try {
        await Promise.all([pipeline(createReadStream(file), child.stdin), pipeline(child.stdout as Readable, counted, unpack)]);
      } catch (err) {
        child.kill('SIGKILL');
        await exited.catch(() => undefined);
        if (errnoCode(err) === 'ENOENT' || errnoCode((err as { cause?: unknown }).cause) === 'ENOENT') throw notInstalled(repo, tool);
        throw err;
      }
      const code = await exited.catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT') throw notInstalled(repo, tool);
        throw err;
      });
      if (code !== 0) throw new Error(`${tool}: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`);
    } else if (compression === 'gzip') {
      await pipeline(createReadStream(file), createGunzip(), counted, unpack);
    } else {
      await pipeline(createReadStream(file), counted, unpack);
    }
  } catch (err) {
    // node-tar may still be finishing writes it had started; let them land
    // before anyone removes the directory.
    await new Promise((resolve) => {
      unpack.once('close', resolve);
      setTimeout(resolve, 200);
    });
    if (err instanceof ReposnapError) throw err;
    if (refused) throw new ReposnapError('EUNSAFE', `repo ${repo}: refusing archive entry ${refused}`);
    throw new ReposnapError('ESOURCE', `repo ${repo}: the archive is corrupt or truncated (${describeTarError(err)})`, { cause: err });
  }
  if (refused) throw new ReposnapError('EUNSAFE', `repo ${repo}: refusing archive entry ${refused}`);
  if (entries === 0) throw new ReposnapError('ESOURCE', `repo ${repo}: the archive is empty or not a tar archive`);
  if (!sawEnd) throw new ReposnapError('ESOURCE', `repo ${repo}: the archive is corrupt or truncated (it has no end-of-archive marker)`);
  return { entries };
}

function notInstalled(repo: string, tool: string): ReposnapError {
  return new ReposnapError('ESOURCE', `repo ${repo}: ${tool} is needed to unpack this archive and is not installed`);
}

function describeTarError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
