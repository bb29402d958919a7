/**
 * The `tarball` source (like emerge-webrsync): an http(s) URL of a .tar,
 * .tar.gz, .tar.xz or .tar.zst snapshot.
 *
 * 1. Download into the update's scratch directory: conditional on the
 *    validators the current tree was made from (an unchanged snapshot costs
 *    one small request and makes no new snapshot), resumed with Range +
 *    If-Range when an earlier sync was cut off.
 * 2. Check the sha256 (sync-tarball-sha256, or a checksum file at
 *    sync-tarball-checksum-uri) before anything is extracted. The same sha256
 *    as the current tree's means nothing changed.
 * 3. Extract into an empty directory with every safety check on.
 * 4. Bring the target up to date from it with links: files whose content and
 *    attributes equal the previous snapshot's stay the previous snapshot's
 *    files (hardlinks), so snapshots share storage.
 *
 * An archive whose only top-level entry is a directory (webrsync's
 * "gentoo-YYYYMMDD/" or "portage/") is unwrapped: its content is the tree.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ReposnapError } from '../errors.js';
import type { SourceKind } from './kind.js';
import { DEFAULT_TARBALL_LIMITS, type TarballLimits } from './tarball-limits.js';

export { DEFAULT_TARBALL_LIMITS, type TarballLimits } from './tarball-limits.js';
import { failpoint } from '../util/failpoint.js';
import { removeTree } from '../util/fs.js';
import { download, dropDownload, notModified, type Validators } from './http-download.js';
import { syncTree } from '../tree/mirror.js';
import { emptyChanges, type FillContext, type PrecheckContext, type SourceResult, type SyncSource } from './source.js';
import { extractArchive } from './tar-extract.js';

export interface TarballConfig {
  type: 'tarball';
  /** sync-tarball-sha256: the archive's expected sha256. */
  sha256?: string;
  /** sync-tarball-checksum-uri: a sha256sum-style file to read it from. */
  checksumUri?: string;
  limits: TarballLimits;
}

export const tarballKind: SourceKind<TarballConfig> = {
  type: 'tarball',
  keys: ['sync-tarball-sha256', 'sync-tarball-checksum-uri', 'sync-tarball-max-size', 'sync-tarball-max-unpacked-size', 'sync-tarball-max-ratio'],
  checkUri: (uri) => (/^https?:\/\/[^/]/.test(uri) ? undefined : `sync-type = tarball needs an http:// or https:// URL, got "${uri}"`),
  parse(r) {
    const sha256 = r.get('sync-tarball-sha256')?.trim().toLowerCase() || undefined;
    if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new ConfigError(r.at('sync-tarball-sha256'), 'expected 64 hexadecimal digits');
    const checksumUri = r.get('sync-tarball-checksum-uri')?.trim() || undefined;
    if (checksumUri !== undefined && !/^https?:\/\/[^/]/.test(checksumUri)) {
      throw new ConfigError(r.at('sync-tarball-checksum-uri'), `expected an http:// or https:// URL, got "${checksumUri}"`);
    }
    return {
      type: 'tarball',
      ...(sha256 !== undefined ? { sha256 } : {}),
      ...(checksumUri !== undefined ? { checksumUri } : {}),
      limits: {
        maxDownload: r.size('sync-tarball-max-size', DEFAULT_TARBALL_LIMITS.maxDownload),
        maxUnpacked: r.size('sync-tarball-max-unpacked-size', DEFAULT_TARBALL_LIMITS.maxUnpacked),
        maxRatio: r.count('sync-tarball-max-ratio', DEFAULT_TARBALL_LIMITS.maxRatio),
      },
    };
  },
  create: (uri, c) =>
    new TarballSource(uri, {
      ...(c.sha256 !== undefined ? { sha256: c.sha256 } : {}),
      ...(c.checksumUri !== undefined ? { checksumUri: c.checksumUri } : {}),
      limits: c.limits,
    }),
};

export interface TarballOptions {
  sha256?: string;
  checksumUri?: string;
  /** Bounds on what a download may write and an archive unpack to. */
  limits?: TarballLimits;
}

export class TarballSource implements SyncSource {
  readonly type = 'tarball' as const;
  constructor(
    readonly uri: string,
    private readonly opts: TarballOptions = {},
  ) {}

  /** One conditional GET: 304 means the snapshot we have is current. */
  async precheck(ctx: PrecheckContext): Promise<boolean> {
    const have = this.validatorsOf(ctx.previous?.state);
    if (!have) return false;
    return notModified(this.uri, have);
  }

  /**
   * The validators the previous download left, if they came from this very
   * URL: an ETag of another URL (sync-uri changed) says nothing here, and a
   * 304 to it would keep the old tree as "up to date".
   */
  private validatorsOf(state: Record<string, string> | undefined): Validators | undefined {
    if (!state || state.url !== this.uri || (!state.etag && !state.lastModified)) return undefined;
    return { ...(state.etag ? { etag: state.etag } : {}), ...(state.lastModified ? { lastModified: state.lastModified } : {}) };
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    if (!ctx.scratchDir) throw new ReposnapError('EINTERNAL', 'tarball source needs a scratch directory');
    await fs.mkdir(ctx.scratchDir, { recursive: true, mode: 0o700 });
    const archive = path.join(ctx.scratchDir, 'archive');
    const prev = ctx.previous;
    // Validators describe the base tree; a target holding part of another
    // update must be rebuilt whatever upstream says, so ask unconditionally.
    const have = prev?.exact ? this.validatorsOf(prev.state) : undefined;

    const limits = this.opts.limits ?? DEFAULT_TARBALL_LIMITS;
    const got = await download({ repo: ctx.repo, url: this.uri, file: archive, maxBytes: limits.maxDownload, ...(have ? { have } : {}) });
    if (got.status === 'not-modified') {
      return { changed: false, changes: emptyChanges(), tree: { files: 0, bytes: 0 }, ...(prev?.revision ? { revision: prev.revision } : {}), ...(prev?.state ? { state: prev.state } : {}) };
    }
    const state: Record<string, string> = {
      url: this.uri,
      ...(got.validators.etag ? { etag: got.validators.etag } : {}),
      ...(got.validators.lastModified ? { lastModified: got.validators.lastModified } : {}),
      downloadedBytes: String(got.bytesReceived),
    };

    const sha256 = await hashFile(archive);
    const expected = await this.expectedSha256(ctx.repo);
    if (expected !== undefined && expected !== sha256) {
      await dropDownload(archive);
      throw new ReposnapError('ESOURCE', `repo ${ctx.repo}: checksum mismatch for ${this.uri}: expected sha256 ${expected}, got ${sha256}`);
    }
    if (prev?.revision === sha256 && prev.exact) {
      await dropDownload(archive);
      return { changed: false, changes: emptyChanges(), tree: { files: 0, bytes: 0 }, revision: sha256, state };
    }

    const unpacked = path.join(ctx.scratchDir, 'tree');
    await removeTree(unpacked);
    await fs.mkdir(unpacked, { mode: 0o755 });
    try {
      await extractArchive(ctx.repo, archive, unpacked, limits);
    } catch (err) {
      // A bad archive is not worth resuming: the next sync fetches it afresh.
      await dropDownload(archive);
      await removeTree(unpacked);
      throw err;
    }
    const root = await unwrapSingleDir(unpacked);
    await ctx.beginWriting(sha256);
    const result = await syncTree(root, ctx.target, { repo: ctx.repo, excludeTop: ctx.excludeTop, link: true, compare: 'content', midway: () => failpoint('fill-midway') });
    await removeTree(unpacked);
    await dropDownload(archive);
    return { ...result, changed: result.changed || prev?.revision !== sha256, revision: sha256, state };
  }

  private async expectedSha256(repo: string): Promise<string | undefined> {
    if (this.opts.sha256) return this.opts.sha256.toLowerCase();
    if (!this.opts.checksumUri) return undefined;
    let res: Response;
    try {
      res = await fetch(this.opts.checksumUri, { signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      throw new ReposnapError('ESOURCE', `repo ${repo}: cannot fetch the checksum file ${this.opts.checksumUri}: ${(err as Error).message}`);
    }
    if (!res.ok) throw new ReposnapError('ESOURCE', `repo ${repo}: cannot fetch the checksum file ${this.opts.checksumUri}: HTTP ${res.status}`);
    const text = await res.text();
    const name = path.posix.basename(new URL(this.uri).pathname);
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => /^[0-9a-fA-F]{64}\b/.test(l));
    const line = lines.find((l) => l.split(/\s+\*?/)[1] === name) ?? (lines.length === 1 ? lines[0] : undefined);
    if (!line) throw new ReposnapError('ESOURCE', `repo ${repo}: the checksum file ${this.opts.checksumUri} has no sha256 for ${name}`);
    return line.slice(0, 64).toLowerCase();
  }
}

async function hashFile(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** The tree inside an archive whose only top-level entry is a directory. */
async function unwrapSingleDir(dir: string): Promise<string> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  if (entries.length === 1 && entries[0]?.isDirectory()) return path.join(dir, entries[0].name);
  return dir;
}
