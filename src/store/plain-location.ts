/**
 * What the two storages without a store (quarantine and in-place) share: the
 * location is a plain directory, updates are serialised by a lock file beside
 * it (not inside it, where a sync would delete it), and an update is just a
 * directory to fill.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { ReposnapError } from '../errors.js';
import type { PreviousTree } from '../tree/provenance.js';
import { treesDiffer } from '../tree/compare.js';
import { readStamp, STAMP_FILE, STAMP_LOCK, type Modification } from '../stamp/stamp.js';
import { QUARANTINE_DIR } from './migrate.js';
import { stampGeneration, type Generation } from '../stamp/cache.js';
import { holderOf, type StorageStatus } from './status.js';
import { atomicWriteFile, lstatOrUndefined, removeTree } from '../util/fs.js';
import { FileLock } from '../lock/file-lock.js';
import { readLastCheck, writeLastCheck, type LastCheck } from './last-check.js';
import { busyMessage, type CommitInfo, type CurrentTree, type InitOptions, type PendingUpdate, type PreparedNext, type Update } from './storage.js';

/**
 * Names at the top of a plain location that are not upstream's content and
 * that no sync touches: a quarantine Portage left, the modification stamp,
 * and the local data Portage's rsync excludes (`/distfiles`, `/local`,
 * `/packages`: an old DISTDIR or PKGDIR under /usr/portage lives there, and
 * a sync that deleted it would lose the user's downloads and binaries).
 */
export const NOT_CONTENT = [QUARANTINE_DIR, STAMP_FILE, STAMP_LOCK, 'distfiles', 'local', 'packages'];

export function siblingLockPath(location: string): string {
  return path.join(path.dirname(location), `.${path.basename(location)}.reposnap.lock`);
}

/** Create the location directory if needed; refuse a file or a symlink. */
export async function ensureLocationDir(name: string, location: string): Promise<void> {
  const st = await lstatOrUndefined(location);
  if (st === undefined) {
    await fs.mkdir(location, { recursive: true, mode: 0o755 });
    return;
  }
  if (st.isSymbolicLink()) {
    // Left by an RCU store (sync-rcu was turned off): updating through the
    // link would write into a snapshot.
    throw new ReposnapError('ESTORE', `repo ${name}: location ${location} is a symlink (an RCU store?); run with sync-rcu = yes or revert the store first`);
  }
  if (!st.isDirectory()) throw new ReposnapError('ESTORE', `repo ${name}: location ${location} is not a directory`);
}

/**
 * What both plain-location storages share: taking the repository (its lock
 * beside the location, a location that is a directory, what the last sync
 * fetched), and the answers about the current tree, which is the location
 * itself. `prepare` makes the real update from the held lock.
 */
export abstract class PlainLocationStorage {
  constructor(
    readonly name: string,
    readonly location: string,
  ) {}

  protected abstract prepare(lock: FileLock, opts: InitOptions): Promise<Update>;

  async initUpdate(opts: InitOptions = {}): Promise<Update> {
    return (await this.beginUpdate(opts)).open(opts);
  }

  async beginUpdate(opts: InitOptions = {}): Promise<PendingUpdate> {
    const lock = await lockLocation(this.name, this.location, opts.wait ?? true, opts.onWait, opts.signal);
    try {
      const cacheDir = siblingCacheDir(this.location);
      return {
        previous: await readLastSync(cacheDir),
        cacheDir,
        lockFds: [lock.fd],
        precheckable: true,
        // The location is itself the target: nothing to compare with apart from it.
        current: undefined,
        migrated: undefined,
        open: async (o = {}) => {
          try {
            return await this.prepare(lock, { ...opts, ...o });
          } catch (err) {
            await lock.release();
            throw err;
          }
        },
        release: () => lock.release(),
      };
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** Nothing is made ahead of time for a plain location. */
  prepareNext(): Promise<PreparedNext> {
    return Promise.resolve({ prepared: false, flattened: null });
  }

  /** Nothing old is kept. */
  garbageCollection(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  async current(): Promise<CurrentTree | undefined> {
    const path = await fs.realpath(this.location).catch(() => undefined);
    return path === undefined ? undefined : { id: null, path };
  }

  /** The location itself: nothing holds it still (that is what RCU is for). */
  async withReaderView<T>(fn: (view: CurrentTree) => Promise<T>): Promise<T> {
    return fn({ id: null, path: await fs.realpath(this.location).catch(() => this.location) });
  }

  generation(): Generation {
    return stampGeneration(this.location);
  }

  recordCheck(check: LastCheck): Promise<void> {
    return writeLastCheck(siblingCacheDir(this.location), check);
  }

  async exists(): Promise<boolean> {
    return (await lstatOrUndefined(this.location)) !== undefined;
  }

  async status(): Promise<StorageStatus> {
    const cur = await this.current();
    const stamp = cur ? await readStamp(cur.path) : undefined;
    return {
      backend: null,
      current: cur ? { id: null, path: cur.path, committedAt: null } : null,
      rolledBack: null,
      lastCheck: (await readLastCheck(siblingCacheDir(this.location))) ?? null,
      snapshots: [],
      staging: [],
      busy: await holderOf(siblingLockPath(this.location)),
      generation: { kind: 'stamp', value: stamp?.counter ?? null, inProgress: stamp?.inProgress ?? false },
    };
  }
}

/** Take the repo's lock and make sure the location is a directory. */
export async function lockLocation(name: string, location: string, wait: boolean, onWait?: InitOptions['onWait'], signal?: AbortSignal): Promise<FileLock> {
  await fs.mkdir(path.dirname(location), { recursive: true, mode: 0o755 });
  const lock = await FileLock.acquire(siblingLockPath(location), { wait, operation: 'sync', busyMessage: busyMessage(name), ...(onWait ? { onWait } : {}), ...(signal ? { signal } : {}) });
  try {
    await ensureLocationDir(name, location);
  } catch (err) {
    await lock.release();
    throw err;
  }
  return lock;
}

/** Source caches of a repo without a store, beside the location. */
export function siblingCacheDir(location: string): string {
  return path.join(path.dirname(location), `.${path.basename(location)}.reposnap-cache`);
}

interface LastSync {
  revision?: string;
  state?: Record<string, string>;
}

/**
 * What the last completed sync fetched. Only a hint: anyone may have changed
 * a plain location since, so sources treat it as inexact.
 */
export async function readLastSync(cacheDir: string): Promise<PreviousTree | undefined> {
  try {
    const last = JSON.parse(await fs.readFile(path.join(cacheDir, 'last.json'), 'utf8')) as LastSync;
    return { exact: false, ...(last.revision ? { revision: last.revision } : {}), ...(last.state ? { state: last.state } : {}) };
  } catch {
    return undefined;
  }
}

export async function writeLastSync(cacheDir: string, info: CommitInfo): Promise<void> {
  const last: LastSync = { ...(info.revision ? { revision: info.revision } : {}), ...(info.state ? { state: info.state } : {}) };
  await fs.mkdir(cacheDir, { recursive: true, mode: 0o755 });
  await atomicWriteFile(path.join(cacheDir, 'last.json'), `${JSON.stringify(last)}\n`);
}

export class LocationUpdate implements Update {
  /** The stamp's open modification, while the location is being changed. */
  modification: Modification | undefined;
  readonly base = null;
  readonly mustCommit = false;
  readonly migrated = undefined;
  readonly backend = undefined;
  private constructor(
    readonly target: string,
    readonly excludeTop: string[],
    readonly resumed: boolean,
    readonly lock: FileLock,
    readonly cacheDir: string,
    readonly previous: PreviousTree | undefined,
    /** The tree a separate target (a quarantine) was made from, and what at its top is not content. */
    private readonly copyOf: { dir: string; excludeTop: string[] } | undefined,
  ) {}

  /**
   * `target` is the location itself (in place), or a copy of it (`copyOf`
   * says so) that an interrupted or rejected update may have left (resumed).
   */
  static async create(
    location: string,
    target: string,
    excludeTop: string[],
    resumed: boolean,
    lock: FileLock,
    copyOf?: { dir: string; excludeTop: string[] },
  ): Promise<LocationUpdate> {
    const cacheDir = siblingCacheDir(location);
    return new LocationUpdate(target, excludeTop, resumed, lock, cacheDir, await readLastSync(cacheDir), copyOf);
  }

  /** A quarantine left by an earlier update may hold any part of it (it has no record of its own). */
  get dirty(): boolean {
    return this.resumed && this.copyOf !== undefined;
  }
  /** A quarantine is a hardlinked copy of the location; the location itself shares nothing. */
  get sharesInodes(): boolean {
    return this.copyOf !== undefined;
  }
  /** A plain location keeps no snapshots to verify against: verification is always in full. */
  readonly baseTree = undefined;
  beginWriting(): Promise<void> {
    return Promise.resolve();
  }
  endFill(): Promise<void> {
    return Promise.resolve();
  }
  differsFromBase(): Promise<boolean> {
    if (this.copyOf === undefined) return Promise.resolve(false);
    return treesDiffer(this.target, this.copyOf.dir, { excludeTop: this.copyOf.excludeTop });
  }

  get lockFds(): number[] {
    return [this.lock.fd];
  }
  get scratchDir(): string {
    return path.join(this.cacheDir, 'scratch');
  }

  /** After a successful update: remember what it fetched, drop its scratch files. */
  async finish(info: CommitInfo): Promise<void> {
    await writeLastSync(this.cacheDir, info);
    await removeTree(this.scratchDir);
  }
}
