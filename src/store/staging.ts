/**
 * Staging directories: the private tree a transaction builds before commit.
 *
 * Each lives at reposnap/staging/<tx>/ with an exclusive kernel lock on
 * <tx>.lock held by its owner for as long as it works on it, and a record,
 * <tx>.json, saying what the tree holds. No two writers ever share one.
 *
 * The record (see StagingInfo) is the resume contract. It is rewritten
 * atomically, and durably, before each step that changes what the tree
 * holds:
 *   - `base`: the snapshot the tree was cloned from; `state`: whether the
 *     clone is complete ("cloning" until it is);
 *   - `fill`: "none" while the tree is still an exact clone of its base;
 *     "partial" from just before a fill's first write until that fill is
 *     done (the tree may then hold any part of the update); "complete" once
 *     a fill finished and left the tree different from its base;
 *   - `heading`: the upstream revision (git commit, tarball sha256) the
 *     writes lead to, when every write since the clone led there;
 *   - `rejected`: verification refused the tree.
 *
 * An update that dies leaves its staging behind, unlocked, and the next
 * update of the same base takes it over: "dirty" (fill is not "none") means
 * the source is told the tree is not its base (PreviousTree.exact false,
 * `toward` the heading), and the update is committed if the tree differs
 * from its base even when the resumed fill has nothing left to do. A clone
 * that never finished, a rejected tree, staging of an older base and staging
 * another backend made are never resumed; a rejected tree stays a day for
 * inspection (the newest one per base), then collection takes it.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { atomicWriteFile, removeTree, syncFilesystem } from '../util/fs.js';
import { isMountPoint } from '../util/mounts.js';
import type { SnapshotBackend } from '../backends/backend.js';
import { OVERLAY_MAX_LAYERS } from '../config/repos.js';
import type { StoreLayout } from './layout.js';
import { mountStaging, stagingIntact, stagingLower } from './layers.js';
import { FileLock } from '../lock/file-lock.js';

export interface StagingInfo {
  tx: string;
  /** Snapshot id the tree was cloned from; null for an empty start. */
  base: number | null;
  backend: string;
  createdAt: string;
  pid: number;
  /**
   * "cloning" until the clone is complete, then "cloned"; "prepared" for a
   * clone made ahead of time for the next sync (exempt from the age limit
   * while its base is still latest).
   */
  state: 'cloning' | 'cloned' | 'prepared';
  /**
   * When the clone was complete (ms since the epoch). Files whose ctime is
   * before it are the base's, untouched: incremental verification relies on
   * it, and the first write waits until it is safely past (beginWriting).
   */
  clonedAt?: number;
  /**
   * Made by the sync that committed its base, at once after the commit and
   * its collection: what moved the base's ctimes between the commit and
   * clonedAt was reposnap's own linking and unlinking (a hardlink clone
   * changes every file's link count, and so its ctime), not a change of
   * content. `reposnap verify` then takes clonedAt as the time since which
   * a moved ctime means a change (see CurrentTree.settledAt).
   */
  afterCommit?: boolean;
  /** What fills did to the tree (absent in records of older versions: unknown, so "partial"). */
  fill?: FillState;
  /** The upstream revision every write so far leads to, where the source has revisions. */
  heading?: string;
  /** Verification refused this tree: kept for inspection, never resumed. */
  rejected?: { at: string; reason: string };
  /**
   * overlayfs: the tree is an overlay mounted on these layers (top first,
   * names in reposnap/layers/), writing into staging/<tx>.layer/upper.
   */
  lower?: string[];
}

export type FillState = 'none' | 'partial' | 'complete';

export const STAGING_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/** The least time between a clone's end and the first write into it. */
export const CLONE_WRITE_GAP_MS = 50;

export class Staging {
  private constructor(
    readonly layout: StoreLayout,
    readonly info: StagingInfo,
    private readonly lock: FileLock,
    /** Whether this staging was left by an earlier, interrupted update. */
    readonly resumed: boolean,
  ) {}

  get tx(): string {
    return this.info.tx;
  }
  /** Whether this update took a clone made ahead of time (sync-rcu-prepare-staging) that nothing had used: reused, but nothing interrupted. */
  get prepared(): boolean {
    return this.tookPrepared;
  }
  private tookPrepared = false;
  get dir(): string {
    return this.layout.staging(this.info.tx);
  }
  get base(): number | null {
    return this.info.base;
  }
  get lockFd(): number {
    return this.lock.fd;
  }
  get scratchDir(): string {
    return this.layout.stagingScratch(this.info.tx);
  }
  /** The overlay this tree is (overlayfs): its lower layers, upper layer and work folder. */
  get overlay(): { lower: string[]; upper: string; work: string } | undefined {
    const lower = this.info.lower;
    if (!lower) return undefined;
    const dir = this.layout.stagingLayer(this.info.tx);
    return { lower, upper: `${dir}/upper`, work: `${dir}/work` };
  }

  /**
   * Staging for an update on top of `base`: an abandoned one cloned from the
   * same base if there is one, else a new clone of `baseDir` (or an empty
   * tree when there is no base). With overlayfs and a base made of layers,
   * the clone is a writable overlay on the base's layers (or, when its
   * stack is as deep as `overlayMaxLayers` allows, on its flattened tree).
   */
  static async open(
    layout: StoreLayout,
    base: number | null,
    baseDir: string | null,
    backend: SnapshotBackend,
    opts: { overlayMaxLayers?: number; afterCommit?: boolean } = {},
  ): Promise<Staging> {
    await fs.mkdir(layout.stagingDir, { recursive: true, mode: 0o755 });
    const reused = await sweepStaging(layout, base, backend.name);
    if (reused) {
      // A clone made ahead is this update's from now on: if it is cut
      // short, the next one resumes an interrupted update, not a clone.
      if (reused.info.state === 'prepared' && reused.fillState === 'none') {
        reused.tookPrepared = true;
        reused.info.state = 'cloned';
        await reused.writeInfo();
      }
      return reused;
    }
    const lower = backend.layers && base !== null && baseDir !== null ? await stagingLower(layout, base, opts.overlayMaxLayers ?? OVERLAY_MAX_LAYERS) : undefined;

    const tx = `${Date.now().toString(36)}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const lock = await FileLock.acquire(layout.stagingLock(tx), { operation: 'stage' });
    const info: StagingInfo = {
      tx,
      base,
      backend: backend.name,
      createdAt: new Date().toISOString(),
      pid: process.pid,
      state: 'cloning',
      fill: 'none',
      ...(lower ? { lower } : {}),
      ...(opts.afterCommit ? { afterCommit: true } : {}),
    };
    const staging = new Staging(layout, info, lock, false);
    try {
      await staging.writeInfo();
      if (lower) await mountStaging(layout, staging.dir, layout.stagingLayer(tx), lower, true);
      else if (baseDir === null) await backend.createEmpty(staging.dir);
      else {
        await backend.clone(baseDir, staging.dir);
        // Durable before the record calls it whole: after a power cut, a
        // record saying "cloned" over a clone that was partly lost would
        // have the next sync apply its plan to a tree missing entries. (It
        // also keeps this flush, a clone's worth of folders and links, off
        // the next commit's syncfs, which is on the way to visible.)
        await syncFilesystem(staging.dir);
      }
      info.state = 'cloned';
      info.clonedAt = Date.now();
      await staging.writeInfo();
    } catch (err) {
      await staging.discard().catch(() => undefined);
      throw err;
    }
    return staging;
  }

  private async writeInfo(): Promise<void> {
    await atomicWriteFile(this.layout.stagingInfo(this.tx), `${JSON.stringify(this.info)}\n`);
  }

  /** What fills did to the tree so far (see StagingInfo.fill). */
  get fillState(): FillState {
    return this.info.fill ?? 'partial';
  }

  /**
   * Record, before a fill's first write, that the tree is about to change,
   * heading for `revision` where the source has one. The heading survives
   * only while every write leads to the same revision.
   */
  async beginWriting(revision?: string): Promise<void> {
    // Every write must get a ctime after clonedAt, even on a clock that
    // stamps inodes a tick late (see trust/metamanifest.ts).
    const wait = (this.info.clonedAt ?? 0) + CLONE_WRITE_GAP_MS - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const heading = this.fillState === 'none' || this.info.heading === revision ? revision : undefined;
    if (this.info.fill === 'partial' && this.info.heading === heading) return;
    this.info.fill = 'partial';
    if (heading === undefined) delete this.info.heading;
    else this.info.heading = heading;
    await this.writeInfo();
  }

  /**
   * Record that a fill finished: the tree now differs from its base (and is
   * `revision`'s tree, where known), or it is an exact clone of it again.
   */
  async endFill(differs: boolean, revision?: string): Promise<void> {
    this.info.fill = differs ? 'complete' : 'none';
    if (differs && revision !== undefined) this.info.heading = revision;
    else delete this.info.heading;
    await this.writeInfo();
  }

  /** Verification refused the tree: keep it for a person to look at, never to resume. */
  async reject(reason: string): Promise<void> {
    this.info.rejected = { at: new Date().toISOString(), reason };
    await this.writeInfo();
    await this.lock.release();
  }

  /** The tree is gone (committed or discarded): drop the bookkeeping and the lock. */
  async finish(): Promise<void> {
    await removeTree(this.scratchDir);
    await removeTree(this.layout.stagingLayer(this.tx));
    await fs.rm(this.layout.stagingInfo(this.tx), { force: true });
    // Remove the lock file while still holding it, so nobody can take a lock
    // on a file that describes nothing.
    await fs.rm(this.layout.stagingLock(this.tx), { force: true });
    await this.lock.release();
  }

  /** Delete the tree and everything that belongs to it. */
  async discard(): Promise<void> {
    await removeTree(this.dir);
    await this.finish();
  }

  /** Give up ownership but keep the tree for a later update to resume. */
  async keep(): Promise<void> {
    await this.lock.release();
  }

  /** Keep the tree as a ready clone of its base for the next update. */
  async keepPrepared(): Promise<void> {
    this.info.state = 'prepared';
    await this.writeInfo();
    await this.lock.release();
  }

  /** @internal */
  static adopt(layout: StoreLayout, info: StagingInfo, lock: FileLock): Staging {
    return new Staging(layout, info, lock, true);
  }
}

export interface StagingEntry {
  tx: string;
  info: StagingInfo | undefined;
  locked: boolean;
}

/** Every staging transaction present, with whether some process holds it. */
export async function listStaging(layout: StoreLayout): Promise<StagingEntry[]> {
  let names: string[];
  try {
    names = await fs.readdir(layout.stagingDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const txs = new Set<string>();
  for (const n of names) {
    if (n.startsWith('.')) continue;
    txs.add(n.replace(/\.(lock|json|scratch|layer)$/, ''));
  }
  const out: StagingEntry[] = [];
  for (const tx of [...txs].sort()) {
    out.push({ tx, info: await readInfo(layout, tx), locked: await FileLock.isHeld(layout.stagingLock(tx)) });
  }
  return out;
}

async function readInfo(layout: StoreLayout, tx: string): Promise<StagingInfo | undefined> {
  try {
    return JSON.parse(await fs.readFile(layout.stagingInfo(tx), 'utf8')) as StagingInfo;
  } catch {
    return undefined;
  }
}

/**
 * Whether abandoned staging is of no further use: nothing says what it was
 * cloned from, its clone never finished, it was cloned from a snapshot that
 * is no longer latest, or it has been lying around for more than a day
 * (unless it was prepared ahead of time for its base, which is still
 * latest). A rejected tree is kept a day from its rejection for a person to
 * look at, whatever became of its base.
 */
export function isStaleStaging(info: StagingInfo | undefined, latest: number | null, now = Date.now()): boolean {
  if (!info) return true;
  if (info.state === 'cloning') return true;
  if (info.rejected) return !(now - new Date(info.rejected.at).getTime() < STAGING_MAX_AGE_MS);
  if (info.base !== latest) return true;
  const age = now - new Date(info.createdAt).getTime();
  return !(age < STAGING_MAX_AGE_MS || info.state === 'prepared');
}

/**
 * Look at abandoned staging: take over the newest one cloned from `base`
 * (returned, locked) and delete the stale ones that nobody holds. The newest
 * rejected tree is left for inspection; older rejected ones go.
 */
async function sweepStaging(layout: StoreLayout, base: number | null, backend: string): Promise<Staging | undefined> {
  let chosen: Staging | undefined;
  let keptRejected = false;
  const entries = await listStaging(layout);
  // Newest first.
  entries.sort((a, b) => (a.info?.createdAt ?? '').localeCompare(b.info?.createdAt ?? '')).reverse();
  for (const entry of entries) {
    if (entry.locked) continue;
    const lock = await FileLock.tryAcquire(layout.stagingLock(entry.tx), { operation: 'stage' });
    if (!lock) continue; // someone took it meanwhile
    const info = await readInfo(layout, entry.tx);
    if (info?.rejected && !keptRejected && !isStaleStaging(info, base)) {
      keptRejected = true;
      await lock.release();
      continue;
    }
    // A tree another backend made is not taken over: its inodes are shared
    // (or not) as that backend shares them, and the fill and the snapshot
    // would be told otherwise (the backend was changed in the configuration).
    if (!chosen && info && !info.rejected && info.backend === backend && !isStaleStaging(info, base) && (await resumable(layout, info))) {
      info.pid = process.pid;
      chosen = Staging.adopt(layout, info, lock);
      continue;
    }
    await Staging.adopt(layout, info ?? stubInfo(entry.tx), lock).discard();
  }
  return chosen;
}

/**
 * Whether an abandoned tree can be written into again: not one sealed
 * read-only (a btrfs commit cut short), and for an overlay, one whose
 * layers are all there, mounted again if it lost its mount (a reboot, a
 * commit cut short after its unmount).
 */
async function resumable(layout: StoreLayout, info: StagingInfo): Promise<boolean> {
  const dir = layout.staging(info.tx);
  if (info.lower) {
    if (!(await stagingIntact(layout, dir, layout.stagingLayer(info.tx), info.lower))) return false;
    if (!(await isMountPoint(dir))) {
      try {
        await mountStaging(layout, dir, layout.stagingLayer(info.tx), info.lower, false);
      } catch {
        return false;
      }
    }
  }
  return fs
    .access(dir, fsc.W_OK)
    .then(() => true)
    .catch(() => false);
}

/** Delete stale abandoned staging (for collection); returns the tx names removed. */
export async function collectStaleStaging(layout: StoreLayout, latest: number | null): Promise<string[]> {
  const removed: string[] = [];
  for (const entry of await listStaging(layout)) {
    if (entry.locked || !isStaleStaging(entry.info, latest)) continue;
    const lock = await FileLock.tryAcquire(layout.stagingLock(entry.tx), { operation: 'gc' });
    if (!lock) continue;
    const info = await readInfo(layout, entry.tx);
    if (!isStaleStaging(info, latest)) {
      await lock.release();
      continue;
    }
    await Staging.adopt(layout, info ?? stubInfo(entry.tx), lock).discard();
    removed.push(entry.tx);
  }
  return removed;
}

function stubInfo(tx: string): StagingInfo {
  return { tx, base: null, backend: 'unknown', createdAt: new Date(0).toISOString(), pid: 0, state: 'cloning' };
}
