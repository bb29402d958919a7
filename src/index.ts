/**
 * reposnap's public API: the same operations as the command line.
 *
 *   import { Repos } from 'reposnap';
 *   const repos = Repos.load({ path: '/etc/portage/repos.conf' });
 *   const report = await repos.get('gentoo').sync();
 *   const tree = await repos.get('gentoo').currentPath();
 */
export { Repos } from './repos.js';
export type { RepoOptions } from './repos.js';
export { Repository } from './repository.js';
export type { RepoStatus, SnapshotStatus, SyncOptions, SyncProgress, SyncReport } from './repository.js';
export { loadConfig, parseConfigText, findConfigPath, SYSTEM_CONFIG_PATHS } from './config/load.js';
export type { LoadOptions } from './config/load.js';
export type { RepoConfig, ReposConfig, StorageMode, SyncType, BackendName } from './config/repos.js';
export { ReposnapError, ConfigError, BusyError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY } from './errors.js';
export type { ErrorCode, LockHolder } from './errors.js';
export { RcuStorage } from './store/rcu-storage.js';
export { QuarantineStorage } from './store/quarantine-storage.js';
export { InPlaceStorage } from './store/inplace-storage.js';
export type { RepoStorage, Update, CommitInfo, CommitResult } from './store/storage.js';
export { StoreLayout } from './store/layout.js';
export type { SnapshotMeta } from './store/metadata.js';
export type { SyncSource, SourceResult } from './sources/source.js';
export { LocalSource } from './sources/local.js';
export { RsyncSource } from './sources/rsync.js';
export { modify, readStamp, Modification, STAMP_FILE } from './stamp/stamp.js';
export type { Stamp, StampContent } from './stamp/stamp.js';
export { StampedCache, stampGeneration } from './stamp/cache.js';
export { snapshotGeneration } from './store/generation.js';
export type { Generation, CacheResult } from './stamp/cache.js';
export type { Lease } from './store/leases.js';
