/**
 * The repository storage interface, after Portage's: init_update,
 * commit_update, abort_update, garbage_collection. Three implementations,
 * chosen by repos.conf as Portage chooses: rcu (snapshots), quarantine (a
 * hardlinked copy brought back into place) and in-place.
 */
import type { StorageMode } from '../config/repos.js';
import type { ChangeStats, TreeStats } from '../tree/mirror.js';
import type { PreviousTree } from '../tree/provenance.js';
import type { GcResult } from './gc.js';
import type { SnapshotMeta, VerificationRecord } from './metadata.js';
import type { Generation } from '../stamp/cache.js';
import type { StorageStatus } from './status.js';

import type { LockHolder } from '../errors.js';
import type { LastCheck } from './last-check.js';

export interface InitOptions {
  /** Wait for another update of the same repo to finish (default) or fail busy. */
  wait?: boolean;
  /** Called once when another process holds the repo and this update waits for it. */
  onWait?: (holder: LockHolder | undefined) => void;
  onProgress?: (p: StorageProgress) => void;
  /** Stop waiting for another update when this aborts (throwing its reason). */
  signal?: AbortSignal;
}

/**
 * A repository taken for an update (locked, migrated or repaired where it
 * needed it) before any tree is made: the pipeline asks the source whether
 * upstream changed, then opens the update or lets the repository go.
 */
export interface PendingUpdate {
  /** What the current tree was made from (exact: a snapshot; inexact: a plain location). */
  readonly previous: PreviousTree | undefined;
  /** Kept between syncs for the source (a git mirror). */
  readonly cacheDir: string;
  /** Descriptors of the locks held, for children that must hold them too. */
  readonly lockFds: number[];
  /**
   * Whether a precheck may say "unchanged" and skip the update: not for a
   * first sync, nor right after migrating a plain location.
   */
  readonly precheckable: boolean;
  /** The current tree, read-only, for sources that compare trees (undefined: the location is itself the target). */
  readonly current: string | undefined;
  /** A snapshot made by migrating a plain-directory location first. */
  readonly migrated: SnapshotMeta | undefined;
  /** Make (or take over) the target to fill. */
  open(opts?: Pick<InitOptions, 'onProgress'>): Promise<Update>;
  /** Nothing to do: let the repository go. */
  release(): Promise<void>;
}

export interface StorageProgress {
  phase: 'migrate' | 'clone';
  done: number;
}

/** An update in progress: a directory for the source to fill. */
export interface Update {
  readonly target: string;
  /** Names at the top of the target that are not content. */
  readonly excludeTop: string[];
  /** Snapshot the target was cloned from (rcu), or null. */
  readonly base: number | null;
  /** Whether the target was left by an interrupted update and is resumed. */
  readonly resumed: boolean;
  /** Whether the target is a clone made ahead of time, after the previous update (rcu). */
  readonly prepared?: boolean;
  /** Commit even if the source reports no change (there is no snapshot yet). */
  readonly mustCommit: boolean;
  /** A snapshot made by migrating a plain-directory location first. */
  readonly migrated: SnapshotMeta | undefined;
  readonly backend: string | undefined;
  /** The target shares inodes with a tree readers see (see FillContext.sharesInodes). */
  readonly sharesInodes: boolean;
  /** Descriptors of the locks that own the target (see FillContext.lockFds). */
  readonly lockFds: number[];
  /** Kept between syncs for the source (see FillContext.cacheDir). */
  readonly cacheDir: string;
  /** This update's own working directory (see FillContext.scratchDir). */
  readonly scratchDir: string;
  /**
   * What the target was made from, as the source must see it: `exact` is
   * false when the target is dirty, and `toward` names the revision an
   * earlier fill was writing toward.
   */
  readonly previous: PreviousTree | undefined;
  /**
   * The target holds writes of an earlier fill that was interrupted (or, for
   * a quarantine, maybe rejected): it is not known to equal its base.
   */
  readonly dirty: boolean;
  /**
   * Record durably, before the fill's first write, that the target is about
   * to change, heading for `revision` where the source has one.
   */
  beginWriting(revision?: string): Promise<void>;
  /**
   * Record that the fill finished and whether the target now differs from
   * its base (and is `revision`'s tree, where known).
   */
  endFill(differs: boolean, revision?: string): Promise<void>;
  /**
   * Whether the target differs from the tree it was made from: asked when a
   * dirty target's fill found nothing left to do.
   */
  differsFromBase(): Promise<boolean>;
  /**
   * The snapshot the target was cloned from, for incremental verification:
   * its tree, its verification record, when the clone was complete, and
   * the folder index its verification left (undefined where unknown, or
   * for storage without snapshots).
   */
  readonly baseTree: { dir: string; clonedAt?: number; verified?: VerificationRecord; folderIndex?: () => Promise<string | undefined> } | undefined;
}

export interface CommitInfo {
  source: { type: string; uri?: string };
  revision?: string;
  state?: Record<string, string>;
  changes: ChangeStats;
  tree: TreeStats;
  /** The verification the tree passed, to record with it. */
  verified?: VerificationRecord;
  /** That verification's folder index of the tree, kept for the next one (rcu). */
  folderIndex?: string;
}

export interface CommitResult {
  /** The published snapshot (rcu). */
  snapshot?: { id: number; path: string; meta: SnapshotMeta };
}

export interface AbortOptions {
  /** Keep the partial work for the next update to resume (rcu). */
  keep?: boolean;
  /** Nothing changed: the target is still an exact clone of its base (rcu). */
  unchanged?: boolean;
  /** Leave the update where it is for a person to look at (failed verification). */
  inspect?: boolean;
  /** Why it was refused, recorded with an update kept for inspection. */
  reason?: string;
}

/** The tree readers get now. */
export interface CurrentTree {
  /** The snapshot id (rcu), or null for a plain location. */
  id: number | null;
  /** Its canonical path. */
  path: string;
  /**
   * Since when (ms since the epoch) a ctime that moved in this snapshot
   * means that something changed it: its commit, or, where the sync that
   * committed it then made the clone for the next sync (which links every
   * file again, moving its ctime), the end of that clone. Absent: not known
   * (the commit time is the bound).
   */
  settledAt?: number;
}

export interface RepoStorage {
  readonly mode: StorageMode;
  /** Portage's init_update: take the repo and make the target (beginUpdate, then open). */
  initUpdate(opts?: InitOptions): Promise<Update>;
  commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult>;
  abortUpdate(update: Update, opts?: AbortOptions): Promise<void>;
  /** Collect what is no longer needed; undefined where a mode keeps nothing old. */
  garbageCollection(): Promise<GcResult | undefined>;

  /** Take the repo for an update, without making a target yet. */
  beginUpdate(opts?: InitOptions): Promise<PendingUpdate>;
  /** Record that a sync ended well just now, and how (see last-check.ts). */
  recordCheck(check: LastCheck): Promise<void>;
  /** After an update was published, make what the next one starts from ready. */
  /**
   * Make the next sync's staging ahead of time. `justCommitted`: the
   * snapshot this sync has just committed (and collected after), when it is
   * this sync that asks (see StagingInfo.afterCommit).
   */
  prepareNext(opts?: { justCommitted?: number }): Promise<PreparedNext>;
  /** The tree readers get now, if there is one. */
  current(): Promise<CurrentTree | undefined>;
  /** Run `fn` with the current tree held still for it (rcu: a lease), or fail when there is none. */
  withReaderView<T>(fn: (view: CurrentTree) => Promise<T>): Promise<T>;
  /** What a cache of the repository's content is keyed on. */
  generation(): Generation;
  /** Whether the repository has been synced (or migrated) at least once. */
  exists(): Promise<boolean>;
  /** What the storage looks like now. Reads only; takes no lock. */
  status(): Promise<StorageStatus>;
}

export function busyMessage(repo: string) {
  return (holder: { pid: number; operation?: string; since?: string } | undefined): string =>
    holder
      ? `repo ${repo} is busy: pid ${holder.pid} holds it (${holder.operation ?? 'update'} since ${holder.since ?? '?'})`
      : `repo ${repo} is busy: another process holds it`;
}

/** What prepareNext made ready for the next update. */
export interface PreparedNext {
  /** A staging tree was made (sync-rcu-prepare-staging). */
  prepared: boolean;
  /** overlayfs: the current snapshot (its stack of `layers` layers at the bound) was flattened into one layer, taking `ms`. */
  flattened: { snapshot: number; layers: number; ms: number } | null;
}
