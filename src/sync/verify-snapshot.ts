/**
 * `reposnap verify`: check the tree readers get now against its MetaManifest,
 * holding it still meanwhile (a lease on the snapshot).
 *
 * Quick (the default): the signature, the TIMESTAMP, every Manifest and
 * file's presence and size, strays, and the hashes of every file changed
 * since the snapshot was committed (by ctime, which nothing can set back):
 * what finds a snapshot tampered with after it was published. "Since" is
 * since the commit, or, where the committing sync then cloned the snapshot
 * for the next sync (a hardlink clone moves every file's ctime), since that
 * clone was complete: a change within those seconds is left to --full
 * (docs/design.md). --full hashes
 * every file, as a first verification does. A plain location (no snapshots,
 * no commit time) is always checked in full.
 */
import type { RepoConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import type { RepoStorage } from '../store/storage.js';
import { ManifestFailure, verifyMetaManifest, type MetaManifestResult } from '../trust/metamanifest.js';
import { Keyring } from '../trust/openpgp.js';

export interface SnapshotVerification extends MetaManifestResult {
  repo: string;
  /** The snapshot checked (null: a plain location), and its path. */
  snapshot: number | null;
  path: string;
  full: boolean;
}

export async function verifySnapshot(config: RepoConfig, storage: RepoStorage, opts: { full?: boolean } = {}): Promise<SnapshotVerification> {
  const repo = config.name;
  const mm = config.metamanifest;
  if (!mm) throw new ReposnapError('EUSAGE', `repo ${repo}: nothing to verify against: sync-rsync-verify-metamanifest is not set to yes`);
  if (!(await storage.exists())) throw new ReposnapError('ESTORE', `repo ${repo} has not been synced yet`);
  const status = await storage.status();
  return storage.withReaderView(async (view) => {
    const committedAt = status.current?.id === view.id && status.current.committedAt ? Date.parse(status.current.committedAt) : NaN;
    const full = opts.full === true || view.id === null || Number.isNaN(committedAt);
    const keyring = await Keyring.open(repo, mm.key);
    try {
      // The snapshot is its own base: what is untouched since its commit is what was verified then.
      const result = await verifyMetaManifest({
        repo,
        root: view.path,
        keyring,
        jobs: mm.jobs,
        maxAgeDays: 0,
        // Since the commit, or since the clone for the next sync that the
        // same sync made after it (which moved every hardlinked file's ctime).
        ...(full ? {} : { base: { root: view.path, clonedAt: Math.max(committedAt, view.settledAt ?? 0) - 40, statEveryFile: true } }),
      });
      return { ...result, repo, snapshot: view.id, path: view.path, full };
    } catch (err) {
      if (err instanceof ManifestFailure) {
        const what = view.id === null ? `the tree at ${view.path}` : `snapshot ${view.id}`;
        throw new ReposnapError('EUNSAFE', `repo ${repo}: ${what} fails verification: ${err.file}: ${err.what}`, { cause: err });
      }
      throw err;
    } finally {
      await keyring.close();
    }
  });
}
