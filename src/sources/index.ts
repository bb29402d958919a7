/**
 * The source kinds, by sync-type: each owns its repos.conf keys and makes
 * its source (see kind.ts). Adding a source: a file here and a line below.
 */
import { ReposnapError } from '../errors.js';
import { gitKind, type GitConfig } from './git.js';
import type { SourceKind } from './kind.js';
import { localKind, type LocalConfig } from './local.js';
import { rsyncKind, type RsyncConfig } from './rsync.js';
import type { SyncSource } from './source.js';
import { tarballKind, type TarballConfig } from './tarball.js';
import { webrsyncKind, type WebrsyncConfig } from './webrsync.js';

/** One source's configuration, by its sync-type. */
export type SourceConfig = LocalConfig | RsyncConfig | GitConfig | TarballConfig | WebrsyncConfig;
export type SyncType = SourceConfig['type'];

export const SOURCE_KINDS: { [T in SyncType]: SourceKind<Extract<SourceConfig, { type: T }>> } = {
  local: localKind,
  rsync: rsyncKind,
  git: gitKind,
  tarball: tarballKind,
  webrsync: webrsyncKind,
};

export const SYNC_TYPES = Object.keys(SOURCE_KINDS) as SyncType[];

/** The source of a repository (a RepoConfig, or anything with these fields). */
export function createSource(repo: { name: string; syncUri: string | undefined; source: SourceConfig | undefined }): SyncSource {
  if (repo.source === undefined || repo.syncUri === undefined) {
    throw new ReposnapError('EUSAGE', `repo ${repo.name} has no sync-type; there is nothing to sync it from`);
  }
  const kind = SOURCE_KINDS[repo.source.type] as SourceKind<SourceConfig>;
  return kind.create(repo.syncUri, repo.source);
}
