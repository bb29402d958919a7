/**
 * reposnap/storage: the layer below the facade, for programs that fill a
 * staging tree themselves or drive a source directly. Portage's storage
 * interface (initUpdate, commitUpdate, abortUpdate, garbageCollection) in
 * its three modes, the store's layout, and the four sync sources with the
 * contracts between them (see docs/design.md, "The resume contract").
 *
 *   import { openStorage } from 'reposnap/storage';
 *   const storage = openStorage(repos.get('gentoo').config);
 *   const update = await storage.initUpdate();
 *   // ...write into update.target, announcing it first:
 *   await update.beginWriting();
 *   await update.endFill(true);
 *   await storage.commitUpdate(update, { source: { type: 'local' }, changes, tree });
 */
export * from './index.js';
export { openStorage } from './store/open.js';
export { RcuStorage } from './store/rcu-storage.js';
export type { RcuOptions } from './store/rcu-storage.js';
export { QuarantineStorage } from './store/quarantine-storage.js';
export { InPlaceStorage } from './store/inplace-storage.js';
export type { RepoStorage, Update, PendingUpdate, CurrentTree, InitOptions, AbortOptions, CommitInfo, CommitResult, PreparedNext } from './store/storage.js';
export { PlainLocationStorage } from './store/plain-location.js';
export { FileLock } from './lock/file-lock.js';
export type { LockMode, LockOptions } from './lock/file-lock.js';
export { StoreLayout } from './store/layout.js';
export type { SnapshotBackend, ConcreteBackendName, LayerMounts } from './backends/backend.js';
export type { CloneStats } from './tree/clone.js';
export { createSource } from './sources/index.js';
export type { SyncSource, SourceResult, SourceProgress, FillContext, PrecheckContext, PrecheckResult, SourcePlan, PreviewContext, ToolOutputListener } from './sources/source.js';
export type { PreviousTree } from './tree/provenance.js';
export { LocalSource } from './sources/local.js';
export { RsyncSource } from './sources/rsync.js';
export type { RsyncSourceOptions } from './sources/rsync.js';
export { GitSource } from './sources/git.js';
export type { GitSourceOptions } from './sources/git.js';
export { TarballSource } from './sources/tarball.js';
export type { TarballOptions } from './sources/tarball.js';
