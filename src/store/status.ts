/**
 * What a storage looks like now, for `status`: read only, no lock taken.
 * Each storage answers for itself (RcuStorage: snapshots, leases, staging;
 * the plain-location storages: the location and its stamp).
 */
import type { LockHolder } from '../errors.js';
import { FileLock, readHolder } from '../lock/file-lock.js';
import type { KeepReason } from './gc.js';
import type { LastCheck } from './last-check.js';

/** A staging tree, as status shows it. */
export interface StagingStatus {
  tx: string;
  base: number | null;
  createdAt: string | null;
  locked: boolean;
  /** What fills did to it: "none", "partial", "complete". */
  fill: string | null;
  /** The upstream revision it heads for. */
  heading: string | null;
  /** Why verification refused it (kept for inspection, never resumed). */
  rejected: { at: string; reason: string } | null;
  /** Cloned ahead of time for the next sync (sync-rcu-prepare-staging). */
  prepared: boolean;
}

export interface SnapshotStatus {
  id: number;
  path: string;
  committedAt: string | null;
  source: string | null;
  revision: string | null;
  files: number | null;
  bytes: number | null;
  backend: string | null;
  /** overlayfs: the layers it is mounted on, top first (its own first); null for a plain folder. */
  layers: string[] | null;
  /** overlayfs: whether it is mounted (false after a reboot, until `reposnap mount` or the next command); null for a plain folder. */
  mounted: boolean | null;
  /** What collection would do now, and why. */
  keep: boolean;
  keepReasons: KeepReason[];
  /** Kept by collection until unpinned (`reposnap pin`). */
  pinned: boolean;
  /** Readers holding a lease: how many processes we can see, and their pids. */
  leases: { count: number; pids: number[] };
}

/** The storage's part of a repository's status. */
export interface StorageStatus {
  /** The backend that made the current snapshot (rcu), or null. */
  backend: string | null;
  current: { id: number | null; path: string; committedAt: string | null } | null;
  /** When a sync last ended well, and whether it updated the tree or found upstream unchanged. */
  lastCheck: LastCheck | null;
  /** The last rollback (`reposnap rollback`), until a sync commits a new snapshot (rcu). */
  rolledBack: { from: number; to: number; at: string } | null;
  snapshots: SnapshotStatus[];
  staging: StagingStatus[];
  /** The process updating the repo right now, if any. */
  busy: LockHolder | { pid: null } | null;
  /**
   * What a cache of this repo's content is keyed on: the current snapshot's
   * id (rcu), or the modification stamp's counter (trees changed in place).
   */
  generation: { kind: 'snapshot' | 'stamp'; value: number | null; inProgress: boolean };
}

/** Who holds the lock at `lockPath`, if anyone. */
export async function holderOf(lockPath: string): Promise<LockHolder | { pid: null } | null> {
  if (!(await FileLock.isHeld(lockPath))) return null;
  return (await readHolder(lockPath)) ?? { pid: null };
}
