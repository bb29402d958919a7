/**
 * In-place storage (sync-rcu = no, sync-allow-hardlinks = no): the source
 * writes straight into the location. Readers can see a half-updated tree;
 * this mode exists because Portage has it and some setups forbid hardlinks.
 * Two updates still never run at once (the sibling lock).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncFilesystem } from '../util/fs.js';
import { FileLock } from './lock.js';
import { QUARANTINE_DIR } from './migrate.js';
import { ensureLocationDir, siblingLockPath } from './quarantine-storage.js';
import { busyMessage, type AbortOptions, type CommitInfo, type CommitResult, type InitOptions, type RepoStorage, type Update } from './storage.js';

class InPlaceUpdate implements Update {
  readonly excludeTop = [QUARANTINE_DIR];
  readonly base = null;
  readonly resumed = false;
  readonly mustCommit = false;
  readonly migrated = undefined;
  readonly backend = undefined;
  get lockFds(): number[] {
    return [this.lock.fd];
  }
  constructor(
    readonly target: string,
    readonly lock: FileLock,
  ) {}
}

export class InPlaceStorage implements RepoStorage {
  readonly mode = 'in-place' as const;
  constructor(
    readonly name: string,
    readonly location: string,
  ) {}

  async initUpdate(opts: InitOptions = {}): Promise<Update> {
    await fs.mkdir(path.dirname(this.location), { recursive: true, mode: 0o755 });
    const lock = await FileLock.acquire(siblingLockPath(this.location), {
      wait: opts.wait ?? true,
      operation: 'sync',
      busyMessage: busyMessage(this.name),
    });
    try {
      await ensureLocationDir(this.name, this.location);
    } catch (err) {
      await lock.release();
      throw err;
    }
    return new InPlaceUpdate(this.location, lock);
  }

  async commitUpdate(update: Update, _info: CommitInfo): Promise<CommitResult> {
    const u = update as InPlaceUpdate;
    try {
      await syncFilesystem(this.location);
      return {};
    } finally {
      await u.lock.release();
    }
  }

  async abortUpdate(update: Update, _opts: AbortOptions = {}): Promise<void> {
    await (update as InPlaceUpdate).lock.release();
  }

  garbageCollection(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}
