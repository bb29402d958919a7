/**
 * Quarantine storage (sync-rcu = no, sync-allow-hardlinks = yes), as Portage
 * does it: the update is built in a hardlinked copy of the location at
 * <location>/.tmp-unverified-download-quarantine, and only after the source
 * succeeded is it brought back into place. Readers still see a tree that is
 * partly old and partly new while that last step runs (that is what RCU
 * fixes), but a failed or interrupted download never reaches the location.
 *
 * Bringing it back uses the tree synchroniser with links: files the source
 * wrote are new inodes private to the quarantine, so each is linked into the
 * location under a temporary name and renamed over the old file.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { cloneTree } from '../util/tree.js';
import { lstatOrUndefined, removeTree, syncFilesystem } from '../util/fs.js';
import { syncTree } from '../sources/local.js';
import { ReposnapError } from '../errors.js';
import { FileLock } from './lock.js';
import { QUARANTINE_DIR } from './migrate.js';
import { busyMessage, type AbortOptions, type CommitInfo, type CommitResult, type InitOptions, type RepoStorage, type Update } from './storage.js';

/** The lock of a repo without a store: beside the location, not inside it. */
export function siblingLockPath(location: string): string {
  return path.join(path.dirname(location), `.${path.basename(location)}.reposnap.lock`);
}

/** Create the location directory if needed; refuse a file or symlink. */
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

class QuarantineUpdate implements Update {
  readonly excludeTop: string[] = [];
  readonly base = null;
  readonly mustCommit = false;
  readonly migrated = undefined;
  readonly backend = undefined;
  get lockFds(): number[] {
    return [this.lock.fd];
  }
  constructor(
    readonly target: string,
    readonly resumed: boolean,
    readonly lock: FileLock,
  ) {}
}

export class QuarantineStorage implements RepoStorage {
  readonly mode = 'quarantine' as const;
  constructor(
    readonly name: string,
    readonly location: string,
  ) {}

  get quarantine(): string {
    return path.join(this.location, QUARANTINE_DIR);
  }

  async initUpdate(opts: InitOptions = {}): Promise<Update> {
    await fs.mkdir(path.dirname(this.location), { recursive: true, mode: 0o755 });
    const lock = await FileLock.acquire(siblingLockPath(this.location), {
      wait: opts.wait ?? true,
      operation: 'sync',
      busyMessage: busyMessage(this.name),
    });
    try {
      await ensureLocationDir(this.name, this.location);
      // A quarantine left by an interrupted update is resumed: the source
      // brings it up to date like any other copy.
      const resumed = (await lstatOrUndefined(this.quarantine))?.isDirectory() ?? false;
      if (!resumed) {
        await removeTree(this.quarantine);
        await cloneTree(this.location, this.quarantine, {
          method: 'link',
          excludeTop: [QUARANTINE_DIR],
          onEntry: (s) => opts.onProgress?.({ phase: 'clone', done: s.files + s.dirs }),
        });
      }
      return new QuarantineUpdate(this.quarantine, resumed, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  async commitUpdate(update: Update, _info: CommitInfo): Promise<CommitResult> {
    const u = update as QuarantineUpdate;
    try {
      await syncFilesystem(u.target);
      await syncTree(u.target, this.location, { repo: this.name, excludeTop: [QUARANTINE_DIR], link: true });
      await syncFilesystem(this.location);
      await removeTree(u.target);
      return {};
    } finally {
      await u.lock.release();
    }
  }

  async abortUpdate(update: Update, _opts: AbortOptions = {}): Promise<void> {
    const u = update as QuarantineUpdate;
    try {
      // The quarantine sits inside the location where readers can see it;
      // a failed download does not stay there.
      await removeTree(u.target);
    } finally {
      await u.lock.release();
    }
  }

  garbageCollection(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}
