/**
 * A configured repository and the operations on it: sync, status and the path
 * a reader should use. The CLI is a thin front end over this.
 */
import fs from 'node:fs/promises';
import type { RepoConfig, StorageMode } from './config/repos.js';
import { errnoCode, isOutOfSpace, ReposnapError, type LockHolder } from './errors.js';
import { createSource } from './sources/index.js';
import { checkSyncUser, fill, needsWorker } from './sync/fill.js';
import { runHooks, type HookResult } from './sync/hooks.js';
import { runVerifyCommand } from './sync/verify.js';
import { readStamp } from './stamp/stamp.js';
import { stampGeneration, StampedCache } from './stamp/cache.js';
import { snapshotGeneration } from './store/generation.js';
import { emptyChanges, type ChangeStats, type SourceProgress, type SourceResult, type TreeStats } from './sources/source.js';
import { planCollection, type GcResult, type KeepReason } from './store/gc.js';
import { readHolder, FileLock } from './lock/file-lock.js';
import { acquireLease, type Lease } from './store/leases.js';
import { readMeta, type SnapshotMeta } from './store/metadata.js';
import { openStorage } from './store/open.js';
import { siblingLockPath } from './store/plain-location.js';
import { RcuStorage } from './store/rcu-storage.js';
import { latestId } from './store/snapshots.js';
import { listStaging } from './store/staging.js';
import type { RepoStorage, StorageProgress, Update } from './store/storage.js';
import type { SyncSource } from './sources/source.js';
import { failpoint } from './util/failpoint.js';

export interface SyncOptions {
  /** Wait for a concurrent update of the same repo (default true). */
  wait?: boolean;
  /** Called with progress; the CLI draws it on a terminal. */
  onProgress?: (event: SyncProgress) => void;
}

export type SyncProgress =
  | ({ repo: string; phase: 'migrate' | 'clone' } & Pick<StorageProgress, 'done'>)
  | ({ repo: string; phase: 'fetch' } & SourceProgress)
  | { repo: string; phase: 'verify' | 'commit' | 'gc' | 'hooks' };

export interface SyncReport {
  repo: string;
  mode: StorageMode;
  /** "updated": a new tree is visible; "up-to-date": nothing changed upstream. */
  outcome: 'updated' | 'up-to-date';
  /** The snapshot readers now get (rcu). */
  snapshot: { id: number; path: string } | null;
  /** A snapshot made first from a plain-directory location (rcu). */
  migrated: number | null;
  backend: string | null;
  resumed: boolean;
  /** Upstream was found unchanged (git commit id, HTTP 304) before any tree was cloned. */
  unchangedBeforeClone: boolean;
  changes: ChangeStats;
  tree: TreeStats;
  /** Snapshot ids collected after the commit. */
  collected: number[];
  timings: SyncTimings;
  /** Post-sync hooks that ran, with how they ended. */
  hooks: HookResult[];
  /** Problems that did not undo the sync (a collection or a hook that failed...). */
  warnings: string[];
}

/**
 * Milliseconds: preparing (locks, migration, clone), fetching, publishing,
 * collecting, cloning ahead for the next sync, in all. The new tree is
 * visible after prepareMs + fetchMs + commitMs.
 */
export interface SyncTimings {
  prepareMs: number;
  fetchMs: number;
  commitMs: number;
  gcMs: number;
  prepareNextMs: number;
  totalMs: number;
}

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
  /** What collection would do now, and why. */
  keep: boolean;
  keepReasons: KeepReason[];
  /** Readers holding a lease: how many processes we can see, and their pids. */
  leases: { count: number; pids: number[] };
}

export interface RepoStatus {
  name: string;
  mode: StorageMode;
  backend: string | null;
  location: string;
  storeDir: string | null;
  syncType: string | null;
  syncUri: string | null;
  autoSync: boolean;
  current: { id: number | null; path: string; committedAt: string | null } | null;
  snapshots: SnapshotStatus[];
  /** Staging trees: what each was cloned from and what it holds. */
  staging: StagingStatus[];
  /** The process updating the repo right now, if any. */
  busy: LockHolder | { pid: null } | null;
  /**
   * What a cache of this repo's content is keyed on: the current snapshot's
   * id (rcu), or the modification stamp's counter (trees changed in place).
   */
  generation: { kind: 'snapshot' | 'stamp'; value: number | null; inProgress: boolean };
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

  /** Bring the repository up to date from its source. */
  async sync(opts: SyncOptions = {}): Promise<SyncReport> {
    const source = createSource(this.config);
    const name = this.name;
    const progress = opts.onProgress;
    const t0 = performance.now();
    // A source that can tell "unchanged" without a tree of its own (git and
    // tarball ask upstream; local and rsync compare upstream with the current
    // snapshot, read-only) is asked before anything is cloned. Not when
    // fetching must run as sync-user: the check reads upstream too.
    const precheck = source.precheck && !needsWorker(this.config) ? source.precheck.bind(source) : undefined;
    // An unknown sync-user is a configuration error: find it before anything is touched.
    await checkSyncUser(this.config);
    const update = await this.storage.initUpdate({
      wait: opts.wait ?? true,
      ...(progress ? { onProgress: (p: StorageProgress) => progress({ repo: name, ...p }) } : {}),
      ...(precheck ? { precheck: (c) => precheck({ repo: name, ...c }) } : {}),
    });
    const t1 = performance.now();

    let result: SourceResult;
    let changed = false;
    if (update.unchanged) {
      await this.storage.abortUpdate(update, { unchanged: true });
      result = { changed: false, changes: emptyChanges(), tree: { files: 0, bytes: 0 } };
    } else {
      await failpoint('staged');
      try {
        result = await this.fillUpdate(update, source, progress);
        // What the target holds now decides, not only what this fill did: a
        // resumed target may hold the work of an earlier, interrupted fill.
        changed = result.changed || update.mustCommit || (update.dirty && (await update.differsFromBase()));
        await update.endFill(changed, result.revision);
      } catch (err) {
        // Keep what was fetched: the next sync resumes from it. Unless the
        // filesystem is full: then what was fetched is what fills it, and
        // keeping it would make the next sync fail too.
        await this.storage.abortUpdate(update, { keep: !isOutOfSpace(err) });
        throw err;
      }
      await failpoint('filled');
    }
    const t2 = performance.now();

    const report: SyncReport = {
      repo: name,
      mode: this.storage.mode,
      outcome: 'up-to-date',
      snapshot: null,
      migrated: update.migrated?.id ?? null,
      backend: update.backend ?? null,
      resumed: update.resumed,
      unchangedBeforeClone: update.unchanged === true,
      changes: result.changes,
      tree: result.tree,
      collected: [],
      timings: { prepareMs: t1 - t0, fetchMs: t2 - t1, commitMs: 0, gcMs: 0, prepareNextMs: 0, totalMs: 0 },
      hooks: [],
      warnings: [],
    };

    if (update.unchanged) {
      // Nothing was made, and the lock is released already.
    } else if (!changed) {
      await this.storage.abortUpdate(update, { unchanged: true });
    } else {
      if (this.config.verifyCommand !== undefined) {
        progress?.({ repo: name, phase: 'verify' });
        try {
          await runVerifyCommand(name, this.config.verifyCommand, update.target);
        } catch (err) {
          await this.storage.abortUpdate(update, { inspect: true, reason: err instanceof Error ? err.message : String(err) });
          throw err;
        }
      }
      progress?.({ repo: name, phase: 'commit' });
      const committed = await this.storage.commitUpdate(update, {
        source: { type: source.type, uri: source.uri },
        ...(result.revision !== undefined ? { revision: result.revision } : {}),
        ...(result.state !== undefined ? { state: result.state } : {}),
        changes: result.changes,
        tree: result.tree,
      });
      report.outcome = 'updated';
      if (committed.snapshot) report.snapshot = { id: committed.snapshot.id, path: committed.snapshot.path };
    }
    const t3 = performance.now();
    report.timings.commitMs = t3 - t2;

    if (report.snapshot === null && this.storage instanceof RcuStorage) {
      const id = await latestId(this.storage.layout);
      if (id !== undefined) report.snapshot = { id, path: this.storage.layout.snapshot(id) };
    }

    // Collection runs after the new snapshot is visible and the repo is free
    // for the next update; its failure does not undo a good sync.
    progress?.({ repo: name, phase: 'gc' });
    let gc: GcResult | undefined;
    try {
      gc = await this.storage.garbageCollection();
    } catch (err) {
      report.warnings.push(`repo ${name}: collecting old snapshots failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    report.collected = gc?.removed ?? [];
    const t4 = performance.now();
    report.timings.gcMs = t4 - t3;

    if (this.config.prepareStaging && this.storage instanceof RcuStorage && report.outcome === 'updated') {
      try {
        await this.storage.prepareNext();
      } catch (err) {
        report.warnings.push(`repo ${name}: preparing staging for the next sync failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const t5 = performance.now();
    report.timings.prepareNextMs = t5 - t4;

    if (this.config.hooksDir !== undefined && (report.outcome === 'updated' || !this.config.hooksOnlyOnChange)) {
      progress?.({ repo: name, phase: 'hooks' });
      report.hooks = await this.runPostSyncHooks(this.config.hooksDir);
      for (const h of report.hooks) {
        if (h.status !== 0) report.warnings.push(`repo ${name}: post-sync hook ${h.hook} failed (${h.signal ? `killed by ${h.signal}` : `exit ${h.status}`})`);
      }
    }
    report.timings.totalMs = performance.now() - t0;
    return report;
  }

  /**
   * Run the source's fill into the update's target, holding it to the
   * resume contract: every write is announced first (and recorded by the
   * storage), so a fill that reports changes without having announced any
   * is a bug, caught here rather than by a wrong resume later.
   */
  private async fillUpdate(update: Update, source: SyncSource, progress: SyncOptions['onProgress']): Promise<SourceResult> {
    const name = this.name;
    let announced = false;
    const result = await fill(this.config, source, {
      repo: name,
      target: update.target,
      excludeTop: update.excludeTop,
      lockFds: update.lockFds,
      cacheDir: update.cacheDir,
      scratchDir: update.scratchDir,
      ...(update.previous ? { previous: update.previous } : {}),
      beginWriting: async (revision?: string) => {
        announced = true;
        await update.beginWriting(revision);
      },
      ...(progress ? { onProgress: (p: SourceProgress) => progress({ repo: name, phase: 'fetch', ...p }) } : {}),
    });
    if (result.changed && !announced) {
      throw new ReposnapError('EINTERNAL', `repo ${name}: the ${source.type} source changed the tree without announcing it (resume contract)`);
    }
    return result;
  }

  private async runPostSyncHooks(dir: string): Promise<HookResult[]> {
    const args = [this.name, this.config.syncUri ?? '', this.config.location];
    const env = { REPOSNAP_REPO: this.name };
    if (!(this.storage instanceof RcuStorage)) return runHooks(dir, args, env);
    return this.withLease((lease) => runHooks(dir, args, { ...env, REPOSNAP_SNAPSHOT: lease.path, REPOSNAP_SNAPSHOT_ID: String(lease.id) }));
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
  lease(): Promise<Lease> {
    return acquireLease(this.rcu('a lease').layout, this.name);
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
    const gen = this.storage instanceof RcuStorage ? snapshotGeneration(this.storage.layout.storeDir) : stampGeneration(this.config.location);
    return new StampedCache(gen, compute, file);
  }

  /** Whether the repository has been synced (or migrated) at least once: it has a store. */
  async synced(): Promise<boolean> {
    if (this.storage instanceof RcuStorage) return this.storage.exists();
    return (await fs.lstat(this.config.location).catch(() => undefined)) !== undefined;
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

  /** Make the location a plain directory again and remove the store. */
  revert(opts: { force?: boolean; wait?: boolean } = {}): Promise<{ id: number | null; reverted: boolean }> {
    return this.rcu('revert').revert(opts);
  }

  /** Migrate a plain-directory location into the store without syncing. */
  migrate(opts: { wait?: boolean } = {}): Promise<SnapshotMeta | undefined> {
    return this.rcu('migrate').migrate(opts);
  }

  /** The canonical path of the tree a reader should use now. */
  async currentPath(): Promise<string> {
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
    const status: RepoStatus = {
      name: c.name,
      mode: c.mode,
      backend: null,
      location: c.location,
      storeDir: c.storeDir ?? null,
      syncType: c.syncType ?? null,
      syncUri: c.syncUri ?? null,
      autoSync: c.autoSync,
      current: null,
      snapshots: [],
      staging: [],
      busy: null,
      generation: { kind: c.mode === 'rcu' ? 'snapshot' : 'stamp', value: null, inProgress: false },
    };
    if (!(this.storage instanceof RcuStorage)) {
      const path = await fs.realpath(c.location).catch(() => undefined);
      if (path !== undefined) {
        status.current = { id: null, path, committedAt: null };
        const stamp = await readStamp(path);
        status.generation = { kind: 'stamp', value: stamp.counter, inProgress: stamp.inProgress };
      }
      status.busy = await holderOf(siblingLockPath(c.location));
      return status;
    }
    const layout = this.storage.layout;
    const plan = await planCollection(layout, { spareSnapshots: c.spareSnapshots, ttlDays: c.ttlDays });
    for (const d of plan) {
      const meta = await readMeta(layout, d.id);
      status.snapshots.push({
        id: d.id,
        path: layout.snapshot(d.id),
        committedAt: d.committedAt ?? null,
        source: meta ? `${meta.source.type}${meta.source.uri ? ` ${meta.source.uri}` : ''}` : null,
        revision: meta?.revision ?? null,
        files: meta?.files ?? null,
        bytes: meta?.bytes ?? null,
        backend: meta?.backend ?? null,
        keep: d.keep,
        keepReasons: d.reasons,
        leases: { count: d.leasedBy.length, pids: d.leasedBy },
      });
    }
    const latest = await latestId(layout);
    const cur = status.snapshots.find((s) => s.id === latest);
    if (cur) status.current = { id: cur.id, path: cur.path, committedAt: cur.committedAt };
    status.generation = { kind: 'snapshot', value: cur?.id ?? null, inProgress: false };
    // The backend that made the current snapshot; before the first sync, the
    // configured choice (status never probes: it must not write).
    status.backend = cur?.backend ?? c.backend;
    status.staging = (await listStaging(layout)).map((s) => ({
      tx: s.tx,
      base: s.info?.base ?? null,
      createdAt: s.info?.createdAt ?? null,
      locked: s.locked,
      fill: s.info ? (s.info.fill ?? 'partial') : null,
      heading: s.info?.heading ?? null,
      rejected: s.info?.rejected ?? null,
    }));
    status.busy = await holderOf(layout.syncLock);
    return status;
  }
}

async function holderOf(lockPath: string): Promise<LockHolder | { pid: null } | null> {
  if (!(await FileLock.isHeld(lockPath))) return null;
  return (await readHolder(lockPath)) ?? { pid: null };
}
