/** The sync source a repository's configuration asks for. */
import type { RepoConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import { GitSource } from './git.js';
import { LocalSource } from './local.js';
import { RsyncSource } from './rsync.js';
import { TarballSource } from './tarball.js';
import type { SyncSource } from './source.js';

export function createSource(repo: RepoConfig): SyncSource {
  if (repo.syncType === undefined || repo.syncUri === undefined) {
    throw new ReposnapError('EUSAGE', `repo ${repo.name} has no sync-type; there is nothing to sync it from`);
  }
  switch (repo.syncType) {
    case 'local':
      return new LocalSource(repo.syncUri);
    case 'rsync':
      return new RsyncSource(repo.syncUri, { extraOpts: repo.rsyncExtraOpts });
    case 'git':
      return new GitSource(repo.syncUri, { depth: repo.syncDepth, ...(repo.gitBranch ? { branch: repo.gitBranch } : {}) });
    case 'tarball':
      return new TarballSource(repo.syncUri, {
        ...(repo.tarballSha256 ? { sha256: repo.tarballSha256 } : {}),
        ...(repo.tarballChecksumUri ? { checksumUri: repo.tarballChecksumUri } : {}),
        limits: repo.tarballLimits,
      });
  }
}
