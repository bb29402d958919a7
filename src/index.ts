/**
 * reposnap's public API: the same operations as the command line.
 *
 *   import { Repos } from 'reposnap';
 *   const repos = Repos.load({ path: '/etc/portage/repos.conf' });
 *   const report = await repos.get('gentoo').sync();
 *   const tree = await repos.get('gentoo').currentPath();
 *
 * Every type these hand out is exported here too. Programs that fill a
 * staging tree themselves, or drive a source directly, use
 * 'reposnap/storage' (storage.ts): the storages, the four sources and their
 * contracts.
 */
export { Repos } from './repos.js';
export type { RepoOptions } from './repos.js';
export { Repository } from './repository.js';
export type { RepoStatus, SnapshotStatus, StagingStatus, StorageStatus, SyncOptions, SyncProgress, SyncReport, ToolOutput, CommandOutput, SyncTimings, VerifiedSummary, SnapshotVerification, SnapshotDiff, TreeChange, RollbackRecord, RestoreResult, RepoCheck, SyncPreview } from './repository.js';
export type { ChangeStats, TreeStats, MirrorProgress } from './tree/mirror.js';
export type { SourceProgress } from './sources/source.js';
export type { HookResult } from './sync/hooks.js';
export type { GcDecision, GcResult, KeepReason } from './store/gc.js';
export type { StorageProgress } from './store/storage.js';
export type { SnapshotMeta, VerificationRecord } from './store/metadata.js';
export type { MetaManifestResult } from './trust/metamanifest.js';
export type { Lease } from './store/leases.js';
export type { LastCheck } from './store/last-check.js';
export type { BPath } from './tree/bytes.js';
export { loadConfig, parseConfigText, findConfigPath, portageUserConfig, SYSTEM_CONFIG_PATHS } from './config/load.js';
export type { LoadOptions } from './config/load.js';
export type { RepoConfig, ReposConfig, MetaManifestConfig, UnmanagedRepo, InterpretOptions, StorageMode, BackendName, Position } from './config/repos.js';
export type { SourceConfig, SyncType } from './sources/index.js';
export type { LocalConfig } from './sources/local.js';
export type { RsyncConfig } from './sources/rsync.js';
export type { GitConfig } from './sources/git.js';
export type { KeySource } from './trust/openpgp.js';
export type { TarballConfig, TarballKeys, TarballLimits } from './sources/tarball.js';
export type { WebrsyncConfig } from './sources/webrsync.js';
export { ReposnapError, ConfigError, BusyError, AbortedError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_BUSY } from './errors.js';
export type { ErrorCode, LockHolder, ConfigPosition } from './errors.js';
export { modify, readStamp, Modification, STAMP_FILE } from './stamp/stamp.js';
export type { Stamp, StampContent } from './stamp/stamp.js';
export { StampedCache, stampGeneration } from './stamp/cache.js';
export { snapshotGeneration } from './store/generation.js';
export type { Generation, CacheResult } from './stamp/cache.js';
