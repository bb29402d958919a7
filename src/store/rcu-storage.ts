/**
 * RCU storage: every update is built in private staging and published as an
 * immutable snapshot by renaming a symlink.
 *
 * Locking discipline (see docs/design.md):
 * - reposnap/sync.lock, exclusive, for a whole update (init to commit or
 *   abort): one update of a repo at a time. A second waits, or with
 *   wait = false fails with EBUSY naming the holder.
 * - reposnap/store.lock, exclusive, briefly: to migrate or repair the layout,
 *   to commit, and to collect. Collection runs after the sync lock is
 *   released, so the next update can start fetching meanwhile.
 * - staging/<tx>.lock, exclusive, by the owner of that staging tree.
 * Readers take no lock: they resolve the location symlink once.
 * Locks are always taken in the order sync -> store -> staging.
 */
import fsx from 'fs-native-extensions';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { SnapshotBackend } from '../backends/backend.js';
import { chooseBackend } from '../backends/select.js';
import type { BackendName } from '../config/repos.js';
import { BusyError, ConfigError, errnoCode, ReposnapError } from '../errors.js';
import { fsyncDir, lstatOrUndefined, removeTree, syncFilesystem } from '../util/fs.js';
import { publishSnapshot } from './commit.js';
import { collect, type GcResult, planCollection } from './gc.js';
import { StoreLayout } from './layout.js';
import { ensureLeaseFile, leaseHolders, acquireLease } from './leases.js';
import { OVERLAY_MAX_LAYERS } from '../config/repos.js';
import { ensureLocationLink, locationKind } from './location.js';
import { FileLock } from '../lock/file-lock.js';
import { readOwner, writeOwner, type StoreOwner } from './owner.js';
import { readFolderIndex, readMeta, type SnapshotMeta } from './metadata.js';
import type { PreviousTree } from '../tree/provenance.js';
import { treesDiffer } from '../tree/compare.js';
import { migrateLocation } from './migrate.js';
import { readLastCheck, writeLastCheck, type LastCheck } from './last-check.js';
import { pinSnapshot, unpinSnapshot } from './pins.js';
import { readRollback, rollBack, type RollbackRecord } from './rollback.js';
import { keptSnapshot, latestId, listSnapshotIds } from './snapshots.js';
import { flattenSnapshot, restoreMounts, snapshotLayers, unmountedSnapshots, type RestoreResult } from './layers.js';
import { flattenLayers } from '../tree/flatten.js';
import { statWalk } from '../tree/clone.js';
import { isRoot } from '../util/identity.js';
import { mountPointsUnder } from '../util/mounts.js';
import { Staging, listStaging } from './staging.js';
import { busyMessage, type AbortOptions, type CommitInfo, type CommitResult, type CurrentTree, type InitOptions, type PendingUpdate, type PreparedNext, type RepoStorage, type Update } from './storage.js';
import type { Generation } from '../stamp/cache.js';
import { snapshotGeneration } from './generation.js';
import { holderOf, type SnapshotStatus, type StorageStatus } from './status.js';

export interface RcuOptions {
  name: string;
  location: string;
  storeDir: string;
  spareSnapshots: number;
  ttlDays: number;
  backend: BackendName;
  allowHardlinks: boolean;
  prepareStaging?: boolean;
  /** overlayfs: the most layers a snapshot's stack may have (sync-rcu-overlay-max-layers). */
  overlayMaxLayers?: number;
  /** Where sync-rcu-store-dir is set, for errors about the store. */
  storeDirPosition?: { file: string; line: number };
}

class RcuUpdate implements Update {
  readonly excludeTop: string[] = [];
  constructor(
    readonly staging: Staging,
    readonly syncLock: FileLock,
    readonly snapshotBackend: SnapshotBackend,
    readonly migrated: SnapshotMeta | undefined,
    readonly cacheDir: string,
    /** What the base snapshot was made from. */
    private readonly basePrevious: PreviousTree | undefined,
    /** The base snapshot's tree, to compare a dirty staging tree with. */
    private readonly baseDir: string | null,
    private readonly baseMeta: SnapshotMeta | undefined,
    private readonly layout: StoreLayout,
  ) {}
  get baseTree(): Update['baseTree'] {
    if (this.baseDir === null) return undefined;
    const clonedAt = this.staging.info.clonedAt;
    const verified = this.baseMeta?.verified;
    const base = this.staging.base;
    return {
      dir: this.baseDir,
      ...(clonedAt !== undefined ? { clonedAt } : {}),
      ...(verified ? { verified } : {}),
      ...(verified && base !== null ? { folderIndex: () => readFolderIndex(this.layout, base) } : {}),
    };
  }
  get dirty(): boolean {
    return this.staging.fillState !== 'none';
  }
  get previous(): PreviousTree | undefined {
    if (!this.dirty) return this.basePrevious;
    const heading = this.staging.info.heading;
    return { ...this.basePrevious, exact: false, ...(heading !== undefined ? { toward: heading } : {}) };
  }
  beginWriting(revision?: string): Promise<void> {
    return this.staging.beginWriting(revision);
  }
  endFill(differs: boolean, revision?: string): Promise<void> {
    return this.staging.endFill(differs, revision);
  }
  async differsFromBase(): Promise<boolean> {
    // A fill that finished found the tree different; one that found nothing
    // since has not changed that.
    if (this.staging.fillState === 'complete') return true;
    if (this.baseDir === null) return true;
    return treesDiffer(this.staging.dir, this.baseDir);
  }
  get scratchDir(): string {
    return this.staging.scratchDir;
  }
  get target(): string {
    return this.staging.dir;
  }
  get base(): number | null {
    return this.staging.base;
  }
  get resumed(): boolean {
    return this.staging.resumed && !this.staging.prepared;
  }
  get prepared(): boolean {
    return this.staging.prepared;
  }
  get mustCommit(): boolean {
    return this.staging.base === null;
  }
  get backend(): string {
    return this.snapshotBackend.name;
  }
  get sharesInodes(): boolean {
    // An empty start shares nothing, whatever the backend; nor does an
    // overlay, which copies a file up before changing it.
    if (this.staging.overlay) return false;
    return this.snapshotBackend.sharesInodes && this.staging.base !== null;
  }
  get lockFds(): number[] {
    return [this.staging.lockFd];
  }
}

export class RcuStorage implements RepoStorage {
  readonly mode = 'rcu' as const;
  readonly layout: StoreLayout;

  constructor(readonly opts: RcuOptions) {
    this.layout = new StoreLayout(opts.storeDir, opts.location);
  }

  backend(): Promise<SnapshotBackend> {
    return chooseBackend(this.opts.backend, this.opts.storeDir, this.opts.allowHardlinks);
  }

  private get maxLayers(): number {
    return this.opts.overlayMaxLayers ?? OVERLAY_MAX_LAYERS;
  }

  private stagingOptions(): { overlayMaxLayers: number } {
    return { overlayMaxLayers: this.maxLayers };
  }

  /**
   * overlayfs: bring back the mounts of snapshots that lost theirs (after a
   * reboot), before anything reads them. One look at the mount table when
   * all are mounted; the store lock only when one is not (so collection is
   * not unmounting it meanwhile). Throws when the current snapshot cannot
   * be mounted (not root, say): a reader would find an empty folder.
   */
  async mount(): Promise<RestoreResult> {
    if ((await unmountedSnapshots(this.layout)).length === 0) return { mounted: [], failed: [] };
    if (!isRoot) return restoreMounts(this.layout, this.opts.name);
    return this.withStoreLock('mount', () => restoreMounts(this.layout, this.opts.name));
  }

  /** Take the store lock for `fn` (commit, collection, layout changes). */
  async withStoreLock<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(this.layout.storeLock, { operation });
    } catch (err) {
      throw this.explainLockGone(err);
    }
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /** Take the repo's sync lock (a whole update, migrate, revert), waiting or not. */
  private async lockRepo(operation: string, wait: boolean, onWait?: InitOptions['onWait'], signal?: AbortSignal): Promise<FileLock> {
    try {
      return await FileLock.acquire(this.layout.syncLock, { wait, operation, busyMessage: busyMessage(this.opts.name), ...(onWait ? { onWait } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      throw this.explainLockGone(err);
    }
  }

  /** A lock whose file vanished while we waited: the store was removed under us (revert). */
  private explainLockGone(err: unknown): unknown {
    if (errnoCode(err) !== 'ENOENT') return err;
    return new ReposnapError(
      'ESTORE',
      `repo ${this.opts.name}: the store ${this.opts.storeDir} was removed while this waited for it (reverted to a plain directory?); nothing was done`,
    );
  }

  /**
   * Make sure the store is this repository's: record its name and location
   * in a store that has no owner yet, refuse one that another repository
   * (another configuration file naming the same store) owns. Without this,
   * each of two repositories would keep repointing the other's location.
   */
  private async claim(): Promise<void> {
    const me: StoreOwner = { repo: this.opts.name, location: this.opts.location };
    const owner = await readOwner(this.layout);
    if (owner === undefined) return writeOwner(this.layout, me);
    if (owner.repo === me.repo && owner.location === me.location) return;
    const why =
      `the store ${this.opts.storeDir} belongs to repository "${owner.repo}" (location ${owner.location})` +
      `${owner.repo === me.repo ? `, not to location ${me.location}` : ''}; if it was moved on purpose, remove ${path.join(this.layout.ownDir, 'owner.json')}`;
    if (this.opts.storeDirPosition) throw new ConfigError({ ...this.opts.storeDirPosition, section: this.opts.name, key: 'sync-rcu-store-dir' }, why);
    throw new ReposnapError('ECONFIG', `repo ${this.opts.name}: ${why}`);
  }

  async initUpdate(opts: InitOptions = {}): Promise<Update> {
    return (await this.beginUpdate(opts)).open(opts);
  }

  /**
   * Take the repo for an update: the sync lock; under the store lock,
   * migrate a plain-directory location, give every snapshot a lease file and
   * repair the location symlink. No tree is made yet (see PendingUpdate).
   */
  async beginUpdate(opts: InitOptions = {}): Promise<PendingUpdate> {
    const layout = this.layout;
    if ((await locationKind(layout.location)) === 'other') {
      throw new ReposnapError('ESTORE', `repo ${this.opts.name}: location ${layout.location} is a file, not a directory or symlink; move it away`);
    }
    await fs.mkdir(layout.ownDir, { recursive: true, mode: 0o755 });
    const syncLock = await this.lockRepo('sync', opts.wait ?? true, opts.onWait, opts.signal);
    try {
      await this.claim();
      const backend = await this.backend();
      const { migrated, base } = await this.withStoreLock('prepare', async () => {
        await restoreMounts(layout, this.opts.name);
        opts.onProgress?.({ phase: 'migrate', done: 0 });
        const migrated = await migrateLocation(layout, backend);
        // Snapshots made by another tool get lease files, so that readers
        // who cannot create files can still lease them.
        for (const id of await listSnapshotIds(layout)) await ensureLeaseFile(layout, id);
        const base = await latestId(layout);
        // Repair a missing or wrong location symlink (or an emptied location)
        // now, so that even an update that finds nothing new leaves it right.
        if (base !== undefined) await ensureLocationLink(layout);
        return { migrated, base };
      });
      const baseMeta = base === undefined ? undefined : await readMeta(layout, base);
      const previous: PreviousTree | undefined = baseMeta
        ? {
            exact: true,
            ...(baseMeta.revision !== undefined ? { revision: baseMeta.revision } : {}),
            ...(baseMeta.sourceState !== undefined ? { state: baseMeta.sourceState } : {}),
          }
        : undefined;
      const baseDir = base === undefined ? null : layout.snapshot(base);
      return {
        previous,
        cacheDir: layout.cacheDir,
        lockFds: [syncLock.fd],
        precheckable: base !== undefined && !migrated,
        current: baseDir ?? undefined,
        migrated,
        open: async (o = {}) => {
          try {
            // The clone reports no per-file progress: cp does it faster than any walk that could.
            o.onProgress?.({ phase: 'clone', done: 0 });
            const staging = await Staging.open(layout, base ?? null, baseDir, backend, this.stagingOptions());
            return new RcuUpdate(staging, syncLock, backend, migrated, layout.cacheDir, previous, baseDir, baseMeta, layout);
          } catch (err) {
            await syncLock.release();
            throw err;
          }
        },
        release: () => syncLock.release(),
      };
    } catch (err) {
      await syncLock.release();
      throw err;
    }
  }

  async commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult> {
    const u = this.own(update);
    try {
      const meta = await this.withStoreLock('commit', () =>
        publishSnapshot(
          this.layout,
          u.staging.dir,
          u.snapshotBackend,
          {
            source: info.source,
            ...(info.revision !== undefined ? { revision: info.revision } : {}),
            ...(info.state !== undefined ? { sourceState: info.state } : {}),
            ...(u.base !== null ? { base: u.base } : {}),
            files: info.tree.files,
            bytes: info.tree.bytes,
            changes: info.changes,
            ...(info.verified ? { verified: info.verified } : {}),
          },
          {
            fixLocation: true,
            ...(info.folderIndex !== undefined ? { folderIndex: info.folderIndex } : {}),
            ...(u.staging.overlay ? { overlay: u.staging.overlay } : {}),
          },
        ),
      );
      await u.staging.finish();
      return { snapshot: { id: meta.id, path: this.layout.snapshot(meta.id), meta } };
    } catch (err) {
      await u.staging.keep().catch(() => undefined);
      throw err;
    } finally {
      await u.syncLock.release();
    }
  }

  async abortUpdate(update: Update, opts: AbortOptions = {}): Promise<void> {
    const u = this.own(update);
    try {
      if (opts.unchanged && this.opts.prepareStaging && u.base !== null) await u.staging.keepPrepared();
      else if (opts.inspect) await u.staging.reject(opts.reason ?? 'verification failed');
      else if (opts.keep) await u.staging.keep();
      else await u.staging.discard();
    } finally {
      await u.syncLock.release();
    }
  }

  /**
   * With sync-rcu-prepare-staging, clone the current snapshot into staging
   * now, so that the next sync starts from a ready copy. Skipped when
   * another update holds the repo (it is about to make its own) or one is
   * ready. overlayfs: a stack at its bound is flattened first, whether or
   * not staging is prepared, so that the next sync does not wait for it.
   */
  async prepareNext(opts: { justCommitted?: number } = {}): Promise<PreparedNext> {
    const none: PreparedNext = { prepared: false, flattened: null };
    const backend = await this.backend();
    if (!this.opts.prepareStaging && !backend.layers) return none;
    const lock = await FileLock.tryAcquire(this.layout.syncLock, { operation: 'prepare' });
    if (!lock) return none;
    try {
      const base = await latestId(this.layout);
      if (base === undefined) return none;
      let flattened: PreparedNext['flattened'] = null;
      const layers = backend.layers ? await snapshotLayers(this.layout, base) : undefined;
      if (layers && layers.length >= this.maxLayers) {
        const made = await flattenSnapshot(this.layout, base, layers);
        if (made) flattened = { snapshot: base, layers: layers.length, ms: made.ms };
      }
      // A new mount's first walk pays for every lookup through its layers
      // (twice the walk of a warm one, measured at 121k files); the next
      // sync's plan walks this snapshot, so walk it now, off that path.
      if (layers) await statWalk(this.layout.snapshot(base));
      if (!this.opts.prepareStaging) return { prepared: false, flattened };
      const staging = await Staging.open(this.layout, base, this.layout.snapshot(base), backend, { ...this.stagingOptions(), afterCommit: opts.justCommitted === base });
      const made = !staging.resumed;
      try {
        if (made) await backend.warm?.(staging.dir);
      } finally {
        await staging.keepPrepared();
      }
      return { prepared: made, flattened };
    } finally {
      await lock.release();
    }
  }

  /**
   * Turn the location back into a plain directory holding the current
   * snapshot's content and remove the store. Refused while readers hold
   * leases, unless forced (they then lose their snapshot).
   */
  async revert(opts: { force?: boolean; wait?: boolean } = {}): Promise<{ id: number | null; reverted: boolean }> {
    const layout = this.layout;
    if (!(await lstatOrUndefined(layout.storeDir))) {
      const kind = await locationKind(layout.location);
      if (kind === 'symlink') {
        throw new ReposnapError('ESTORE', `repo ${this.opts.name}: the store ${layout.storeDir} is gone and the location is a dangling symlink; nothing to revert to`);
      }
      return { id: null, reverted: false };
    }
    const syncLock = await this.lockRepo('revert', opts.wait ?? true);
    try {
      await this.claim();
      return await this.withStoreLock('revert', async () => {
        if (!opts.force) {
          for (const id of await listSnapshotIds(layout)) {
            const lease = await leaseHolders(layout, id);
            if (lease.leased) {
              const who = lease.pids.length > 0 ? `pid ${lease.pids.join(', ')}` : 'another process';
              throw new BusyError(`repo ${this.opts.name}: snapshot ${id} is leased by ${who}; not reverting (use --force to revert anyway)`, lease.pids[0] !== undefined ? { pid: lease.pids[0] } : undefined);
            }
          }
        }
        const id = await latestId(layout);
        const kind = await locationKind(layout.location);
        if (id !== undefined && (kind === 'symlink' || kind === 'missing' || kind === 'empty-dir')) {
          const tmp = layout.locationAside;
          await removeTree(tmp);
          const layers = await snapshotLayers(layout, id);
          if (layers) {
            // An overlay snapshot becomes a plain folder: its tree, linked from its layers.
            await restoreMounts(layout, this.opts.name);
            await flattenLayers(layout.snapshot(id), layers.map((l) => layout.layer(l)), tmp);
          } else {
            await (await this.backend()).clone(layout.snapshot(id), tmp);
          }
          await syncFilesystem(tmp);
          if (kind === 'missing') {
            await fs.rename(tmp, layout.location);
          } else {
            // One exchange: readers see the snapshot or the directory.
            await fsx.swap(tmp, layout.location);
            await removeTree(tmp);
          }
          await fsyncDir(path.dirname(layout.location));
        } else if (kind === 'symlink' || kind === 'missing') {
          throw new ReposnapError('ESTORE', `repo ${this.opts.name}: no current snapshot to revert to (location ${layout.location} is ${kind === 'missing' ? 'missing' : 'a dangling symlink'})`);
        }
        // The location is a plain directory now. What an interrupted revert
        // (or migration) left beside it goes, then the store.
        await removeTree(layout.locationAside);
        await removeTree(layout.storeDir);
        return { id: id ?? null, reverted: true };
      });
    } finally {
      await syncLock.release();
    }
  }

  /** Migrate a plain-directory location into the store now. */
  async migrate(opts: { wait?: boolean } = {}): Promise<SnapshotMeta | undefined> {
    await fs.mkdir(this.layout.ownDir, { recursive: true, mode: 0o755 });
    const syncLock = await this.lockRepo('migrate', opts.wait ?? true);
    try {
      await this.claim();
      const backend = await this.backend();
      return await this.withStoreLock('migrate', async () => {
        const meta = await migrateLocation(this.layout, backend);
        if ((await latestId(this.layout)) !== undefined) await ensureLocationLink(this.layout);
        return meta;
      });
    } finally {
      await syncLock.release();
    }
  }

  /**
   * Make an older kept snapshot current (default: the newest one older than
   * the current), while no update runs: see rollback.ts.
   */
  async rollback(opts: { to?: number; wait?: boolean } = {}): Promise<RollbackRecord> {
    const syncLock = await this.lockRepo('rollback', opts.wait ?? true);
    try {
      return await this.withStoreLock('rollback', async () => {
        await restoreMounts(this.layout, this.opts.name);
        return rollBack(this.layout, this.opts.name, opts.to);
      });
    } finally {
      await syncLock.release();
    }
  }

  /** Pin (or unpin) a kept snapshot: collection keeps it while pinned. Returns whether that changed anything. */
  async pin(id: number, pinned: boolean): Promise<boolean> {
    return this.withStoreLock(pinned ? 'pin' : 'unpin', async () => {
      if (pinned) keptSnapshot(this.opts.name, await listSnapshotIds(this.layout), id);
      return pinned ? pinSnapshot(this.layout, id) : unpinSnapshot(this.layout, id);
    });
  }

  recordCheck(check: LastCheck): Promise<void> {
    return writeLastCheck(this.layout.ownDir, check);
  }

  async current(): Promise<CurrentTree | undefined> {
    if (await this.exists()) await this.mount();
    const id = await latestId(this.layout);
    return id === undefined ? undefined : { id, path: this.layout.snapshot(id) };
  }

  /** A lease on the current snapshot, for as long as `fn` runs. */
  async withReaderView<T>(fn: (view: CurrentTree) => Promise<T>): Promise<T> {
    if (await this.exists()) await this.mount();
    const lease = await acquireLease(this.layout, this.opts.name);
    try {
      const settledAt = await this.settledAt(lease.id);
      return await fn({ id: lease.id, path: lease.path, ...(settledAt !== undefined ? { settledAt } : {}) });
    } finally {
      await lease.release();
    }
  }

  /**
   * The end of the clone the sync that committed snapshot `id` made for the
   * next sync right after (StagingInfo.afterCommit), while that staging is
   * there: the ctimes that clone and the collection before it moved in the
   * snapshot are all before it. Once the staging is gone (taken and
   * committed, or removed, which unlinks and so moves ctimes again), there
   * is none.
   */
  private async settledAt(id: number): Promise<number | undefined> {
    let at: number | undefined;
    for (const { info } of await listStaging(this.layout)) {
      if (info?.base !== id || info.afterCommit !== true || info.clonedAt === undefined || info.rejected) continue;
      at = Math.max(at ?? 0, info.clonedAt);
    }
    return at;
  }

  generation(): Generation {
    return snapshotGeneration(this.layout.storeDir);
  }

  async status(): Promise<StorageStatus> {
    const layout = this.layout;
    const snapshots: SnapshotStatus[] = [];
    const mounted = await mountPointsUnder(layout.snapshotsDir);
    for (const d of await planCollection(layout, { spareSnapshots: this.opts.spareSnapshots, ttlDays: this.opts.ttlDays })) {
      const meta = await readMeta(layout, d.id);
      snapshots.push({
        id: d.id,
        path: layout.snapshot(d.id),
        committedAt: d.committedAt ?? null,
        source: meta ? `${meta.source.type}${meta.source.uri ? ` ${meta.source.uri}` : ''}` : null,
        revision: meta?.revision ?? null,
        files: meta?.files ?? null,
        bytes: meta?.bytes ?? null,
        backend: meta?.backend ?? null,
        layers: meta?.layers ?? null,
        mounted: meta?.layers ? mounted.has(await fs.realpath(layout.snapshot(d.id)).catch(() => '')) : null,
        keep: d.keep,
        keepReasons: d.reasons,
        pinned: d.reasons.includes('pinned'),
        leases: { count: d.leasedBy.length, pids: d.leasedBy },
      });
    }
    const latest = await latestId(layout);
    const cur = snapshots.find((x) => x.id === latest);
    return {
      // The backend that made the current snapshot; before the first sync,
      // the configured choice (status never probes: it must not write).
      backend: cur?.backend ?? this.opts.backend,
      current: cur ? { id: cur.id, path: cur.path, committedAt: cur.committedAt } : null,
      rolledBack: (await readRollback(layout)) ?? null,
      lastCheck: (await readLastCheck(layout.ownDir)) ?? null,
      snapshots,
      staging: (await listStaging(layout)).map((x) => ({
        tx: x.tx,
        base: x.info?.base ?? null,
        createdAt: x.info?.createdAt ?? null,
        locked: x.locked,
        fill: x.info ? (x.info.fill ?? 'partial') : null,
        heading: x.info?.heading ?? null,
        rejected: x.info?.rejected ?? null,
        prepared: x.info?.state === 'prepared',
      })),
      busy: await holderOf(layout.syncLock),
      generation: { kind: 'snapshot', value: cur?.id ?? null, inProgress: false },
    };
  }

  /** Whether the store has been made (by a first sync or migration). */
  async exists(): Promise<boolean> {
    return (await lstatOrUndefined(this.layout.ownDir)) !== undefined;
  }

  async garbageCollection(): Promise<GcResult> {
    // A repo never synced has nothing to collect (and no lock file to take).
    if (!(await this.exists())) return { decisions: [], removed: [], removedStaging: [] };
    await this.claim();
    return this.withStoreLock('gc', () =>
      collect(this.layout, { spareSnapshots: this.opts.spareSnapshots, ttlDays: this.opts.ttlDays }),
    );
  }

  private own(update: Update): RcuUpdate {
    if (!(update instanceof RcuUpdate)) throw new ReposnapError('EINTERNAL', 'update does not belong to this storage');
    return update;
  }
}
