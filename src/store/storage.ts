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
import type { SnapshotMeta } from './metadata.js';

export interface InitOptions {
  /** Wait for another update of the same repo to finish (default) or fail busy. */
  wait?: boolean;
  onProgress?: (p: StorageProgress) => void;
  /**
   * Asked, once the repo is locked and before any tree is cloned, whether
   * upstream is unchanged since `previous`; if so the update is `unchanged`
   * and has no target.
   */
  precheck?: (ctx: { previous: PreviousTree | undefined; cacheDir: string; lockFds: number[]; current?: string }) => Promise<boolean>;
}

export interface StorageProgress {
  phase: 'migrate' | 'clone';
  done: number;
}

/** An update in progress: a directory for the source to fill. */
export interface Update {
  /** Upstream was found unchanged before any target was made (see InitOptions.precheck). */
  readonly unchanged?: boolean;
  readonly target: string;
  /** Names at the top of the target that are not content. */
  readonly excludeTop: string[];
  /** Snapshot the target was cloned from (rcu), or null. */
  readonly base: number | null;
  /** Whether the target was left by an interrupted update and is resumed. */
  readonly resumed: boolean;
  /** Commit even if the source reports no change (there is no snapshot yet). */
  readonly mustCommit: boolean;
  /** A snapshot made by migrating a plain-directory location first. */
  readonly migrated: SnapshotMeta | undefined;
  readonly backend: string | undefined;
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
}

export interface CommitInfo {
  source: { type: string; uri?: string };
  revision?: string;
  state?: Record<string, string>;
  changes: ChangeStats;
  tree: TreeStats;
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

export interface RepoStorage {
  readonly mode: StorageMode;
  initUpdate(opts?: InitOptions): Promise<Update>;
  commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult>;
  abortUpdate(update: Update, opts?: AbortOptions): Promise<void>;
  /** Collect what is no longer needed; undefined where a mode keeps nothing old. */
  garbageCollection(): Promise<GcResult | undefined>;
}

export function busyMessage(repo: string) {
  return (holder: { pid: number; operation?: string; since?: string } | undefined): string =>
    holder
      ? `repo ${repo} is busy: pid ${holder.pid} holds it (${holder.operation ?? 'update'} since ${holder.since ?? '?'})`
      : `repo ${repo} is busy: another process holds it`;
}

/** An update that found nothing to do before making a target: it only holds the lock. */
export class UnchangedUpdate implements Update {
  readonly unchanged = true;
  readonly target = '';
  readonly excludeTop: string[] = [];
  readonly resumed = false;
  readonly mustCommit = false;
  readonly migrated = undefined;
  readonly backend = undefined;
  readonly scratchDir = '';
  readonly dirty = false;
  constructor(
    readonly base: number | null,
    readonly lock: { release(): Promise<void>; fd: number },
    readonly cacheDir: string,
    readonly previous: PreviousTree | undefined,
  ) {}
  get lockFds(): number[] {
    return [this.lock.fd];
  }
  beginWriting(): Promise<void> {
    return Promise.reject(new Error('an unchanged update has no target to write'));
  }
  endFill(): Promise<void> {
    return Promise.resolve();
  }
  differsFromBase(): Promise<boolean> {
    return Promise.resolve(false);
  }
}
