/**
 * Staging directories: the private tree a transaction builds before commit.
 *
 * Each lives at reposnap/staging/<tx>/ with an exclusive kernel lock on
 * <tx>.lock held by its owner for as long as it works on it, and <tx>.json
 * saying which snapshot it was cloned from. No two writers ever share one.
 *
 * An update that dies leaves its staging behind, unlocked. The next update
 * reuses it when it was cloned from the snapshot that is still latest: every
 * file in it is either the base snapshot's (a link), or a complete new file
 * renamed into place, or a leftover temporary that the source deletes, so
 * bringing it up to date transfers only what the dead update had not yet
 * fetched. Staging cloned from an older snapshot is discarded; staging
 * abandoned for more than a day is collected.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { atomicWriteFile, removeTree } from '../util/fs.js';
import type { SnapshotBackend } from '../backends/backend.js';
import type { StoreLayout } from './layout.js';
import { FileLock } from './lock.js';

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
}

export const STAGING_MAX_AGE_MS = 24 * 60 * 60 * 1000;

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

  /**
   * Staging for an update on top of `base`: an abandoned one cloned from the
   * same base if there is one, else a new clone of `baseDir` (or an empty
   * tree when there is no base).
   */
  static async open(
    layout: StoreLayout,
    base: number | null,
    baseDir: string | null,
    backend: SnapshotBackend,
  ): Promise<Staging> {
    await fs.mkdir(layout.stagingDir, { recursive: true, mode: 0o755 });
    const reused = await sweepStaging(layout, base);
    if (reused) return reused;

    const tx = `${Date.now().toString(36)}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const lock = await FileLock.acquire(layout.stagingLock(tx), { operation: 'stage' });
    const info: StagingInfo = {
      tx,
      base,
      backend: backend.name,
      createdAt: new Date().toISOString(),
      pid: process.pid,
      state: 'cloning',
    };
    const staging = new Staging(layout, info, lock, false);
    try {
      await staging.writeInfo();
      if (baseDir === null) await backend.createEmpty(staging.dir);
      else await backend.clone(baseDir, staging.dir);
      info.state = 'cloned';
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

  /** The tree is gone (committed or discarded): drop the bookkeeping and the lock. */
  async finish(): Promise<void> {
    await removeTree(this.scratchDir);
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
    txs.add(n.replace(/\.(lock|json|scratch)$/, ''));
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
 * cloned from, it was cloned from a snapshot that is no longer latest, or it
 * has been lying around for more than a day (unless it was prepared ahead of
 * time for its base, which is still latest).
 */
export function isStaleStaging(info: StagingInfo | undefined, latest: number | null, now = Date.now()): boolean {
  if (!info) return true;
  if (info.base !== latest) return true;
  const age = now - new Date(info.createdAt).getTime();
  return !(age < STAGING_MAX_AGE_MS || info.state === 'prepared');
}

/**
 * Look at abandoned staging: take over the newest one cloned from `base`
 * (returned, locked) and delete the stale ones that nobody holds.
 */
async function sweepStaging(layout: StoreLayout, base: number | null): Promise<Staging | undefined> {
  let chosen: Staging | undefined;
  const entries = await listStaging(layout);
  // Newest first.
  entries.sort((a, b) => (a.info?.createdAt ?? '').localeCompare(b.info?.createdAt ?? '')).reverse();
  for (const entry of entries) {
    if (entry.locked) continue;
    const lock = await FileLock.tryAcquire(layout.stagingLock(entry.tx), { operation: 'stage' });
    if (!lock) continue; // someone took it meanwhile
    const info = await readInfo(layout, entry.tx);
    // A tree sealed read-only (a btrfs commit cut short) cannot be resumed.
    const usable = await fs
      .access(layout.staging(entry.tx), fsc.W_OK)
      .then(() => true)
      .catch(() => false);
    if (!chosen && info && usable && !isStaleStaging(info, base)) {
      info.pid = process.pid;
      chosen = Staging.adopt(layout, info, lock);
      continue;
    }
    await Staging.adopt(layout, info ?? stubInfo(entry.tx), lock).discard();
  }
  return chosen;
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
