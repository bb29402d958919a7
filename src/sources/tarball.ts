/**
 * The `tarball` source: an http(s) URL of a .tar, .tar.gz, .tar.xz or
 * .tar.zst snapshot. (`sync-type = webrsync` is this source with Gentoo's
 * snapshot defaults, see webrsync.ts.)
 *
 * 1. Download into the update's scratch directory: conditional on the
 *    validators the current tree was made from (an unchanged snapshot costs
 *    one small request and makes no new snapshot), resumed with Range +
 *    If-Range when an earlier sync was cut off.
 * 2. Check the sha256 (sync-tarball-sha256, or a checksum file at
 *    sync-tarball-checksum-uri) before anything is extracted. The same sha256
 *    as the current tree's means nothing changed.
 * 3. With sync-webrsync-verify-signature = yes, check the detached OpenPGP
 *    signature (sync-tarball-signature-uri, by default the URL plus ".asc",
 *    the usual name of an armored detached signature) against the keys of
 *    sync-openpgp-key-path. An archive that fails is dropped, never
 *    extracted; the snapshot records the fingerprint of the key that signed
 *    it (state.signedBy). A 304 needs no check: the current tree was
 *    checked when it was made (and one that was not is not asked about
 *    conditionally).
 * 4. Extract into an empty directory with every safety check on.
 * 5. Bring the target up to date from it with links: files whose content and
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
import type { ConfigReader, SourceKind } from './kind.js';
import { keyFileFor, Keyring, unverified, type KeySource } from '../trust/openpgp.js';
import { DEFAULT_TARBALL_LIMITS, type TarballLimits } from './tarball-limits.js';

export { DEFAULT_TARBALL_LIMITS, type TarballLimits } from './tarball-limits.js';
import { aborted } from '../util/abort.js';
import { failpoint } from '../util/failpoint.js';
import { removeTree } from '../util/fs.js';
import { download, dropDownload, fetchSmall, notModified, type DownloadOptions, type Validators } from './http-download.js';
import { syncTree } from '../tree/mirror.js';
import { emptyChanges, unchangedIf, type PrecheckResult, type FillContext, type PrecheckContext, type SourceResult, type SyncSource } from './source.js';
import { extractArchive } from './tar-extract.js';

/** What the tarball and webrsync kinds read from repos.conf (they differ in their type and defaults). */
export interface TarballKeys {
  /** sync-tarball-sha256: the archive's expected sha256. */
  sha256?: string;
  /** sync-tarball-checksum-uri: a sha256sum-style file to read it from. */
  checksumUri?: string;
  /**
   * sync-webrsync-verify-signature = yes: the key file the archive's detached
   * signature must be made by, and sync-tarball-signature-uri if set (the
   * default depends on the kind and the sync-uri, known when the source is made).
   */
  verify?: { key: KeySource; signatureUri?: string };
  limits: TarballLimits;
}

export interface TarballConfig extends TarballKeys {
  type: 'tarball';
}

/** The keys of a source that fetches a snapshot tarball (tarball, webrsync). */
export const TARBALL_KEYS = [
  'sync-tarball-sha256',
  'sync-tarball-checksum-uri',
  'sync-tarball-signature-uri',
  'sync-webrsync-verify-signature',
  'sync-tarball-max-size',
  'sync-tarball-max-unpacked-size',
  'sync-tarball-max-ratio',
] as const;

/** Whether `uri` is an http(s) URL, the only kind a tarball is fetched from. */
export function isHttpUrl(uri: string): boolean {
  return /^https?:\/\/[^/]/.test(uri);
}

/** Read and check TARBALL_KEYS. */
export function parseTarballKeys(r: ConfigReader): TarballKeys {
  const sha256 = r.get('sync-tarball-sha256')?.trim().toLowerCase() || undefined;
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/.test(sha256)) throw new ConfigError(r.at('sync-tarball-sha256'), 'expected 64 hexadecimal digits');
  const url = (key: string): string | undefined => {
    const v = r.get(key)?.trim() || undefined;
    if (v !== undefined && !isHttpUrl(v)) throw new ConfigError(r.at(key), `expected an http:// or https:// URL, got "${v}"`);
    return v;
  };
  const checksumUri = url('sync-tarball-checksum-uri');
  const signatureUri = url('sync-tarball-signature-uri');
  // No by default, as in Portage (whose shipped repos.conf sets it for Gentoo).
  const verifying = r.bool('sync-webrsync-verify-signature', false);
  if (signatureUri !== undefined && !verifying) {
    // A signature URL that nothing checks reads as if the archive were verified.
    throw new ConfigError(r.at('sync-tarball-signature-uri'), 'is set, but sync-webrsync-verify-signature is not yes: the signature would never be checked (set sync-webrsync-verify-signature = yes, or remove this key)');
  }
  const verify = verifying ? { key: keyFileFor(r, 'sync-webrsync-verify-signature'), ...(signatureUri !== undefined ? { signatureUri } : {}) } : undefined;
  return {
    ...(sha256 !== undefined ? { sha256 } : {}),
    ...(checksumUri !== undefined ? { checksumUri } : {}),
    ...(verify !== undefined ? { verify } : {}),
    limits: {
      maxDownload: r.size('sync-tarball-max-size', DEFAULT_TARBALL_LIMITS.maxDownload),
      maxUnpacked: r.size('sync-tarball-max-unpacked-size', DEFAULT_TARBALL_LIMITS.maxUnpacked),
      maxRatio: r.count('sync-tarball-max-ratio', DEFAULT_TARBALL_LIMITS.maxRatio),
    },
  };
}

/** The source options for `uri` from TarballKeys; an unset signature URL is `uri` + `signatureSuffix`. */
export function tarballOptions(uri: string, c: TarballKeys, signatureSuffix: string): TarballOptions {
  return {
    ...(c.sha256 !== undefined ? { sha256: c.sha256 } : {}),
    ...(c.checksumUri !== undefined ? { checksumUri: c.checksumUri } : {}),
    ...(c.verify !== undefined ? { verify: { key: c.verify.key, signatureUri: c.verify.signatureUri ?? `${uri}${signatureSuffix}` } } : {}),
    limits: c.limits,
  };
}

export const tarballKind: SourceKind<TarballConfig> = {
  type: 'tarball',
  keys: TARBALL_KEYS,
  checkUri: (uri) => (isHttpUrl(uri) ? undefined : `sync-type = tarball needs an http:// or https:// URL, got "${uri}"`),
  parse: (r) => ({ type: 'tarball', ...parseTarballKeys(r) }),
  create: (uri, c) => new TarballSource(uri, tarballOptions(uri, c, '.asc')),
};

export interface TarballOptions {
  sha256?: string;
  checksumUri?: string;
  /** The archive must carry a good detached signature, fetched from `signatureUri`, by a key of `key`. */
  verify?: { key: KeySource; signatureUri: string };
  /** Bounds on what a download may write and an archive unpack to. */
  limits?: TarballLimits;
}

/** The most a detached signature may be: a few signatures are a few KiB. */
const MAX_SIGNATURE_BYTES = 64 * 1024;
/** The most a checksum file may be (one line per file of a release or so). */
const MAX_CHECKSUM_FILE_BYTES = 1024 * 1024;

export class TarballSource implements SyncSource {
  readonly type: 'tarball' | 'webrsync' = 'tarball';
  constructor(
    readonly uri: string,
    private readonly opts: TarballOptions = {},
  ) {}

  /** One conditional GET: 304 means the snapshot we have is current. */
  async precheck(ctx: PrecheckContext): Promise<PrecheckResult> {
    const have = this.validatorsOf(ctx.previous?.state);
    return unchangedIf(have !== undefined && (await notModified(this.uri, have)));
  }

  /**
   * The validators the previous download left, if they came from this very
   * URL: an ETag of another URL (sync-uri changed) says nothing here, and a
   * 304 to it would keep the old tree as "up to date". Nor, when signatures
   * are checked, do those of a tree that was not checked (made before
   * verification was turned on): a 304 would keep it as if it had been.
   */
  private validatorsOf(state: Record<string, string> | undefined): Validators | undefined {
    if (!state || state.url !== this.uri || (!state.etag && !state.lastModified) || !this.verifiedEnough(state)) return undefined;
    return { ...(state.etag ? { etag: state.etag } : {}), ...(state.lastModified ? { lastModified: state.lastModified } : {}) };
  }

  /** Whether a tree made with `state` was checked as this source checks: always, when it checks no signature. */
  private verifiedEnough(state: Record<string, string> | undefined): boolean {
    return this.opts.verify === undefined || state?.signedBy !== undefined;
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    // The key file before the download: one without a usable key is the
    // configuration's fault (exit 2), and no archive is fetched for nothing.
    const ring = this.opts.verify ? await Keyring.open(ctx.repo, this.opts.verify.key) : undefined;
    try {
      return await this.fillWith(ctx, ring);
    } finally {
      await ring?.close();
    }
  }

  private async fillWith(ctx: FillContext, ring: Keyring | undefined): Promise<SourceResult> {
    if (!ctx.scratchDir) throw new ReposnapError('EINTERNAL', 'tarball source needs a scratch directory');
    await fs.mkdir(ctx.scratchDir, { recursive: true, mode: 0o700 });
    const archive = path.join(ctx.scratchDir, 'archive');
    const prev = ctx.previous;
    // Validators describe the base tree; a target holding part of another
    // update must be rebuilt whatever upstream says, so ask unconditionally.
    const have = prev?.exact ? this.validatorsOf(prev.state) : undefined;

    const limits = this.opts.limits ?? DEFAULT_TARBALL_LIMITS;
    const got = await download({ repo: ctx.repo, url: this.uri, file: archive, maxBytes: limits.maxDownload, ...(have ? { have } : {}), ...downloadProgress(ctx) });
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
    if (ring) state.signedBy = await this.checkSignature(ctx.repo, ring, archive, sha256);
    // The same archive as the current tree's: nothing to do, unless that
    // tree was not verified and this one was (the snapshot records it).
    if (prev?.revision === sha256 && prev.exact && this.verifiedEnough(prev.state)) {
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
      // An extraction stopped by an aborted sync says nothing of the archive.
      if (!aborted()) await dropDownload(archive);
      await removeTree(unpacked);
      throw err;
    }
    const root = await unwrapSingleDir(unpacked);
    await ctx.beginWriting(sha256);
    const result = await syncTree(root, ctx.target, {
      repo: ctx.repo,
      excludeTop: ctx.excludeTop,
      link: true,
      compare: 'content',
      midway: () => failpoint('fill-midway'),
      ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
      ...(ctx.onWritten ? { onWritten: (p: string) => ctx.onWritten?.([p]) } : {}),
    });
    await removeTree(unpacked);
    await dropDownload(archive);
    return { ...result, changed: result.changed || prev?.revision !== sha256 || !this.verifiedEnough(prev.state), revision: sha256, state };
  }

  /**
   * The fingerprint of the key whose detached signature over `archive` is
   * good, or a refusal. A signature that cannot be fetched leaves the
   * archive for the next sync to resume (it may be fine; the signature may
   * not be published yet); one that fails drops it, so that the next sync
   * fetches both afresh (a mirror caught between updating the archive and
   * its signature is put right by that).
   */
  private async checkSignature(repo: string, ring: Keyring, archive: string, sha256: string): Promise<string> {
    const { key, signatureUri } = this.opts.verify as NonNullable<TarballOptions['verify']>;
    const what = `${path.posix.basename(new URL(this.uri).pathname) || this.uri} (sha256 ${sha256.slice(0, 16)})`;
    let signature: Buffer;
    try {
      signature = await fetchSmall(signatureUri, MAX_SIGNATURE_BYTES);
    } catch (err) {
      throw unverified(repo, what, `its signature ${signatureUri} cannot be fetched (${(err as Error).message})`);
    }
    const verdict = await ring.verifyFile(repo, signature, archive);
    if (!verdict.ok) {
      // gpg stopped by an aborted sync judged nothing: the archive stays for the next sync.
      if (!aborted()) await dropDownload(archive);
      throw unverified(repo, what, `${verdict.why} (signature ${signatureUri}, key file ${key.file})`);
    }
    return verdict.fingerprint;
  }

  private async expectedSha256(repo: string): Promise<string | undefined> {
    if (this.opts.sha256) return this.opts.sha256.toLowerCase();
    if (!this.opts.checksumUri) return undefined;
    let text: string;
    try {
      text = (await fetchSmall(this.opts.checksumUri, MAX_CHECKSUM_FILE_BYTES)).toString('utf8');
    } catch (err) {
      throw new ReposnapError('ESOURCE', `repo ${repo}: cannot fetch the checksum file ${this.opts.checksumUri}: ${(err as Error).message}`);
    }
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

/** A download's bytes as the fill's progress, five times a second at most. */
function downloadProgress(ctx: FillContext): Pick<DownloadOptions, 'onBytes'> {
  const onProgress = ctx.onProgress;
  if (!onProgress) return {};
  let last = 0;
  return {
    onBytes(bytes, total) {
      const now = Date.now();
      if (now - last < 200 && bytes !== total) return;
      last = now;
      onProgress({ step: 'download', scanned: 0, changed: 0, bytes, ...(total !== undefined ? { totalBytes: total } : {}) });
    },
  };
}
