/**
 * In-place storage (sync-rcu = no, sync-allow-hardlinks = no): the source
 * writes straight into the location. Readers can see a half-updated tree;
 * this mode exists because Portage has it and some setups forbid hardlinks.
 * Two updates still never run at once (the sibling lock).
 */
import { syncFilesystem } from '../util/fs.js';
import { QUARANTINE_DIR } from './migrate.js';
import { LocationUpdate, lockLocation } from './plain-location.js';
import { type AbortOptions, type CommitInfo, type CommitResult, type InitOptions, type RepoStorage, type Update } from './storage.js';

export class InPlaceStorage implements RepoStorage {
  readonly mode = 'in-place' as const;
  constructor(
    readonly name: string,
    readonly location: string,
  ) {}

  async initUpdate(opts: InitOptions = {}): Promise<Update> {
    const lock = await lockLocation(this.name, this.location, opts.wait ?? true);
    // A quarantine left by Portage is not content.
    return await LocationUpdate.create(this.location, this.location, [QUARANTINE_DIR], false, lock);
  }

  async commitUpdate(update: Update, info: CommitInfo): Promise<CommitResult> {
    const u = update as LocationUpdate;
    try {
      await syncFilesystem(this.location);
      await u.finish(info);
      return {};
    } finally {
      await u.lock.release();
    }
  }

  async abortUpdate(update: Update, _opts: AbortOptions = {}): Promise<void> {
    await (update as LocationUpdate).lock.release();
  }

  garbageCollection(): Promise<undefined> {
    return Promise.resolve(undefined);
  }
}
