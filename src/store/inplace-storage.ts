/**
 * In-place storage (sync-rcu = no, sync-allow-hardlinks = no): the source
 * writes straight into the location. Readers can see a half-updated tree;
 * this mode exists because Portage has it and some setups forbid hardlinks.
 * Two updates still never run at once (the sibling lock).
 */
import { syncFilesystem } from '../util/fs.js';
import { Modification } from '../stamp/stamp.js';
import type { FileLock } from '../lock/file-lock.js';
import { LocationUpdate, NOT_CONTENT, PlainLocationStorage } from './plain-location.js';
import type { AbortOptions, CommitInfo, CommitResult, RepoStorage, Update } from './storage.js';

export class InPlaceStorage extends PlainLocationStorage implements RepoStorage {
  readonly mode = 'in-place' as const;

  protected async prepare(lock: FileLock): Promise<Update> {
    // Readers can see the tree change from now on: stamp it "in progress".
    const modification = await Modification.begin(this.location);
    // A quarantine left by Portage, the stamp and local data are not content.
    const u = await LocationUpdate.create(this.location, this.location, NOT_CONTENT, false, lock);
    u.modification = modification;
    return u;
  }

  async commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult> {
    const u = update as LocationUpdate;
    try {
      await syncFilesystem(this.location);
      await u.finish(info);
      await u.modification?.end();
      return {};
    } finally {
      await u.lock.release();
    }
  }

  async abortUpdate(update: Update, _opts: AbortOptions = {}): Promise<void> {
    const u = update as LocationUpdate;
    try {
      // Whatever the source wrote before failing is in place: the tree did change.
      await u.modification?.end();
    } finally {
      await u.lock.release();
    }
  }
}
