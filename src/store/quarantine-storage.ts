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
import path from 'node:path';
import { cloneTree } from '../tree/clone.js';
import { lstatOrUndefined, removeTree, syncFilesystem } from '../util/fs.js';
import { syncTree } from '../tree/mirror.js';
import { modify } from '../stamp/stamp.js';
import { QUARANTINE_DIR } from './migrate.js';
import type { FileLock } from '../lock/file-lock.js';
import { LocationUpdate, NOT_CONTENT, PlainLocationStorage } from './plain-location.js';
import type { AbortOptions, CommitInfo, CommitResult, InitOptions, RepoStorage, Update } from './storage.js';

export class QuarantineStorage extends PlainLocationStorage implements RepoStorage {
  readonly mode = 'quarantine' as const;

  get quarantine(): string {
    return path.join(this.location, QUARANTINE_DIR);
  }

  protected async prepare(lock: FileLock, opts: InitOptions): Promise<Update> {
    // A quarantine left by an interrupted update is resumed: the source
    // brings it up to date like any other copy.
    const resumed = (await lstatOrUndefined(this.quarantine))?.isDirectory() ?? false;
    if (!resumed) {
      await removeTree(this.quarantine);
      await cloneTree(this.location, this.quarantine, {
        method: 'link',
        excludeTop: NOT_CONTENT,
        onEntry: (s) => opts.onProgress?.({ phase: 'clone', done: s.files + s.dirs }),
      });
    }
    return LocationUpdate.create(this.location, this.quarantine, [], resumed, lock, {
      dir: this.location,
      excludeTop: NOT_CONTENT,
    });
  }

  async commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult> {
    const u = update as LocationUpdate;
    try {
      await syncFilesystem(u.target);
      // Bringing the update into place is the modification readers can see.
      await modify(this.location, () =>
        syncTree(u.target, this.location, { repo: this.name, excludeTop: NOT_CONTENT, link: true }),
      );
      await syncFilesystem(this.location);
      await removeTree(u.target);
      await u.finish(info);
      return {};
    } finally {
      await u.lock.release();
    }
  }

  async abortUpdate(update: Update, opts: AbortOptions = {}): Promise<void> {
    const u = update as LocationUpdate;
    try {
      // The quarantine sits inside the location where readers can see it;
      // a failed download does not stay there. One that failed verification
      // does, for inspection, as Portage keeps it.
      if (!opts.inspect) await removeTree(u.target);
    } finally {
      await u.lock.release();
    }
  }
}
