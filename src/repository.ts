/**
 * A configured repository and the operations on it: sync, status and the path
 * a reader should use. The CLI is a thin front end over this.
 */
import fs from 'node:fs/promises';
import type { RepoConfig, StorageMode } from './config/repos.js';
import { errnoCode, ReposnapError } from './errors.js';
import { StampedCache } from './stamp/cache.js';
import { planCollection, type GcResult } from './store/gc.js';
import { acquireLease, type Lease } from './store/leases.js';
import type { SnapshotMeta } from './store/metadata.js';
import { openStorage } from './store/open.js';
import { RcuStorage } from './store/rcu-storage.js';
import type { StorageStatus } from './store/status.js';
import type { RepoStorage } from './store/storage.js';
import { checkRepo, type RepoCheck } from './check.js';
import { previewSync, type SyncPreview } from './sync/preview.js';
import type { RollbackRecord } from './store/rollback.js';
import type { RestoreResult } from './store/layers.js';
import { keptBefore, keptSnapshot, latestId, listSnapshotIds } from './store/snapshots.js';
import { runSync, type SyncOptions, type SyncReport } from './sync/pipeline.js';
import { diffTrees, type TreeChange } from './tree/diff.js';
import { verifySnapshot, type SnapshotVerification } from './sync/verify-snapshot.js';

export type { CommandOutput, SyncOptions, SyncProgress, SyncReport, SyncTimings, ToolOutput, VerifiedSummary } from './sync/pipeline.js';
export type { SnapshotVerification } from './sync/verify-snapshot.js';
export type { TreeChange } from './tree/diff.js';
export type { RollbackRecord } from './store/rollback.js';
export type { RestoreResult } from './store/layers.js';
export type { RepoCheck } from './check.js';
export type { SyncPreview } from './sync/preview.js';
export type { SnapshotStatus, StagingStatus, StorageStatus } from './store/status.js';

/** A repository as `status` shows it: its configuration, and its storage's state. */
/** What `Repository.diff` found between snapshots `from` and `to`. */
export interface SnapshotDiff {
  from: number;
  to: number;
  changes: TreeChange[];
}

export interface RepoStatus extends StorageStatus {
  name: string;
  mode: StorageMode;
  location: string;
  storeDir: string | null;
  syncType: string | null;
  syncUri: string | null;
  autoSync: boolean;
}

export class Repository {
  /** @internal How updates reach the location (reposnap/storage's openStorage(config) gives one to users). */
  readonly storage: RepoStorage;

  constructor(readonly config: RepoConfig) {
    this.storage = openStorage(config);
  }

  get name(): string {
    return this.config.name;
  }

  /** Bring the repository up to date from its source (the steps: sync/pipeline.ts). */
  sync(opts: SyncOptions = {}): Promise<SyncReport> {
    return runSync(this, opts);
  }

  private rcu(what: string): RcuStorage {
    if (!(this.storage instanceof RcuStorage)) {
      throw new ReposnapError('EUSAGE', `repo ${this.name} is not an RCU repository (sync-rcu = no): ${what} needs snapshots`);
    }
    return this.storage;
  }

  /**
   * Lease the current snapshot: collection will not delete it until the
   * lease is released (or the process dies).
   */
  async lease(): Promise<Lease> {
    const storage = this.rcu('a lease');
    if (await storage.exists()) await storage.mount();
    return acquireLease(storage.layout, this.name);
  }

  /**
   * overlayfs: mount the kept snapshots that have lost their mounts (after
   * a reboot). Every command that resolves a snapshot does this first;
   * `reposnap mount` does it at boot, before anything reads the repository.
   */
  async mount(): Promise<RestoreResult> {
    const storage = this.rcu('mount');
    if (!(await storage.exists())) return { mounted: [], failed: [] };
    return storage.mount();
  }

  /** Run `fn` with a lease on the current snapshot, released afterwards. */
  async withLease<T>(fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = await this.lease();
    try {
      return await fn(lease);
    } finally {
      await lease.release();
    }
  }

  /**
   * A cache of data derived from this repository's tree, trusted again after
   * one cheap check of its generation (see StampedCache).
   */
  cache<T>(compute: () => Promise<T>, file?: string): StampedCache<T> {
    return new StampedCache(this.storage.generation(), compute, file);
  }

  /** Whether the repository has been synced (or migrated) at least once: it has a store. */
  synced(): Promise<boolean> {
    return this.storage.exists();
  }

  /** Collect old snapshots now, or with dryRun only say what would go and why. */
  async gc(opts: { dryRun?: boolean } = {}): Promise<GcResult> {
    const storage = this.rcu('gc');
    if (opts.dryRun) {
      const c = this.config;
      return { decisions: await planCollection(storage.layout, { spareSnapshots: c.spareSnapshots, ttlDays: c.ttlDays }), removed: [], removedStaging: [] };
    }
    return storage.garbageCollection();
  }

  /**
   * What changed between two kept snapshots (default: the one before the
   * current and the current), entry by entry.
   */
  async diff(from?: number, to?: number): Promise<SnapshotDiff> {
    await this.mount();
    const layout = this.rcu('diff').layout;
    const kept = await listSnapshotIds(layout);
    const b = to !== undefined ? keptSnapshot(this.name, kept, to) : await latestId(layout);
    if (b === undefined) throw new ReposnapError('ESTORE', `repo ${this.name} has no snapshot yet`);
    const a = from !== undefined ? keptSnapshot(this.name, kept, from) : keptBefore(kept, b);
    if (a === undefined) throw new ReposnapError('EUSAGE', `repo ${this.name} keeps no snapshot older than ${b} to compare it with (kept: ${kept.join(', ')})`);
    try {
      return { from: a, to: b, changes: await diffTrees(layout.snapshot(a), layout.snapshot(b)) };
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      throw new ReposnapError('ESTORE', `repo ${this.name}: snapshot ${a} or ${b} was collected while being compared; try again`);
    }
  }

  /**
   * Make an older kept snapshot current (default: the newest one older than
   * the current), atomically; the next sync brings upstream back.
   */
  rollback(opts: { to?: number; wait?: boolean } = {}): Promise<RollbackRecord> {
    return this.rcu('rollback').rollback(opts);
  }

  /** Keep snapshot `id` from collection until unpinned; false when it already was pinned. */
  pin(id: number): Promise<boolean> {
    return this.rcu('pin').pin(id, true);
  }

  /** Let collection take snapshot `id` again; false when it was not pinned. */
  unpin(id: number): Promise<boolean> {
    return this.rcu('unpin').pin(id, false);
  }

  /** What a sync would change now, without writing anything (see sync/preview.ts). */
  preview(): Promise<SyncPreview> {
    return previewSync(this);
  }

  /** Whether this repository can be synced here: tools, folders, filesystem and backend (see check.ts). */
  check(): Promise<RepoCheck> {
    return checkRepo(this.config);
  }

  /** Make the location a plain directory again and remove the store. */
  revert(opts: { force?: boolean; wait?: boolean } = {}): Promise<{ id: number | null; reverted: boolean }> {
    return this.rcu('revert').revert(opts);
  }

  /** Migrate a plain-directory location into the store without syncing. */
  migrate(opts: { wait?: boolean } = {}): Promise<SnapshotMeta | undefined> {
    return this.rcu('migrate').migrate(opts);
  }

  /**
   * Check the current tree against its MetaManifest (sync-rsync-verify-
   * metamanifest): quickly (what changed since it was published), or in full.
   * Throws (EUNSAFE) naming the file and what is wrong.
   */
  verify(opts: { full?: boolean } = {}): Promise<SnapshotVerification> {
    return verifySnapshot(this.config, this.storage, opts);
  }

  /** The canonical path of the tree a reader should use now. */
  async currentPath(): Promise<string> {
    if (this.storage instanceof RcuStorage && (await this.storage.exists())) await this.storage.mount();
    try {
      return await fs.realpath(this.config.location);
    } catch (err) {
      const why = errnoCode(err) === 'ENOENT' ? 'has not been synced yet (or its store is gone)' : `cannot be resolved (${errnoCode(err) ?? String(err)})`;
      throw new ReposnapError('ESTORE', `repo ${this.name}: location ${this.config.location} ${why}`);
    }
  }

  /** What the repository looks like now. Reads only; takes no lock. */
  async status(): Promise<RepoStatus> {
    const c = this.config;
    return {
      name: c.name,
      mode: c.mode,
      location: c.location,
      storeDir: c.storeDir ?? null,
      syncType: c.syncType ?? null,
      syncUri: c.syncUri ?? null,
      autoSync: c.autoSync,
      ...(await this.storage.status()),
    };
  }
}
