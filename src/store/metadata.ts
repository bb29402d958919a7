/**
 * Per-snapshot metadata, kept outside snapshots/ in reposnap/meta/<N>.json.
 *
 * The commit time recorded here is what the TTL is measured from. The
 * directory's mtime is no use: rsync -a copies the upstream tree's mtime onto
 * it, which can make a snapshot committed a minute ago look weeks old.
 */
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import type { ChangeStats } from '../tree/mirror.js';
import { atomicWriteFile } from '../util/fs.js';
import type { StoreLayout } from './layout.js';

export interface SnapshotMeta {
  id: number;
  /** ISO 8601 time the snapshot became latest. */
  committedAt: string;
  /** Where the content came from. */
  source: { type: string; uri?: string };
  /** Upstream revision, where the source has one. */
  revision?: string;
  /** Source facts for the next sync (HTTP validators...). */
  sourceState?: Record<string, string>;
  /** Snapshot this one was cloned from, if any. */
  base?: number;
  backend: string;
  /** Non-directory entries in the tree. */
  files: number;
  /** Bytes of regular files, where the source measured them. */
  bytes?: number;
  changes?: ChangeStats;
  /** How the tree was verified before it was published, if it was. */
  verified?: VerificationRecord;
  /**
   * overlayfs: the layers snapshots/<N> is mounted on, top first (names in
   * reposnap/layers/); the first is the snapshot's own. What brings the
   * mount back after a reboot, and what collection keeps layers for.
   */
  layers?: string[];
}

/** A MetaManifest verification that passed, as recorded with the snapshot. */
export interface VerificationRecord {
  method: 'metamanifest';
  /** Fingerprint of the key that signed the top-level Manifest. */
  signedBy: string;
  /** The key file it was checked against, and the sha256 of its content then. */
  keyFile: string;
  keyDigest: string;
  /** The signed TIMESTAMP. */
  timestamp: string;
  /** Checked against the verified snapshot it was cloned from (`base`), or in full. */
  incremental: boolean;
  /** ISO 8601 time of the verification. */
  at: string;
  files: number;
  hashed: number;
}

export async function readMeta(layout: StoreLayout, id: number): Promise<SnapshotMeta | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(layout.meta(id), 'utf8')) as SnapshotMeta;
    return parsed.id === id ? parsed : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

export async function writeMeta(layout: StoreLayout, meta: SnapshotMeta): Promise<void> {
  await fs.mkdir(layout.metaDir, { recursive: true, mode: 0o755 });
  await atomicWriteFile(layout.meta(meta.id), `${JSON.stringify(meta, null, 2)}\n`);
}

/**
 * The folder index a verification made of snapshot `id`'s tree (see
 * trust/tree-walk.ts), kept beside its metadata for the next incremental
 * verification; undefined when there is none. Written before the snapshot
 * is published and never after, like the metadata: it describes an
 * immutable tree.
 */
export async function readFolderIndex(layout: StoreLayout, id: number): Promise<string | undefined> {
  try {
    return await fs.readFile(layout.folderIndex(id), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

export async function writeFolderIndex(layout: StoreLayout, id: number, text: string): Promise<void> {
  await fs.mkdir(layout.metaDir, { recursive: true, mode: 0o755 });
  await atomicWriteFile(layout.folderIndex(id), text);
}

/** Remove snapshot `id`'s metadata and folder index. */
export async function removeMeta(layout: StoreLayout, id: number): Promise<void> {
  await fs.rm(layout.folderIndex(id), { force: true });
  await fs.rm(layout.meta(id), { force: true });
}

/** Ids that have a metadata file or folder index (including ones whose snapshot is gone). */
export async function listMetaIds(layout: StoreLayout): Promise<number[]> {
  try {
    const names = await fs.readdir(layout.metaDir);
    const ids = names.map((n) => /^([1-9]\d*)(?:\.folders)?\.json$/.exec(n)).filter((m): m is RegExpExecArray => m !== null);
    return [...new Set(ids.map((m) => Number(m[1])))];
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}

/**
 * When a snapshot was committed: from its metadata, else (a snapshot made by
 * Portage) the directory's ctime, which the rename into snapshots/ set.
 */
export async function commitTime(layout: StoreLayout, id: number, meta?: SnapshotMeta): Promise<Date | undefined> {
  const m = meta ?? (await readMeta(layout, id));
  if (m) {
    const t = new Date(m.committedAt);
    if (!Number.isNaN(t.getTime())) return t;
  }
  try {
    return (await fs.lstat(layout.snapshot(id))).ctime;
  } catch {
    return undefined;
  }
}
