/** The storage a repository's configuration asks for. */
import type { RepoConfig } from '../config/repos.js';
import { InPlaceStorage } from './inplace-storage.js';
import { QuarantineStorage } from './quarantine-storage.js';
import { RcuStorage } from './rcu-storage.js';
import type { RepoStorage } from './storage.js';

export function openStorage(repo: RepoConfig): RepoStorage {
  switch (repo.mode) {
    case 'rcu':
      return new RcuStorage({
        name: repo.name,
        location: repo.location,
        storeDir: repo.storeDir as string,
        spareSnapshots: repo.spareSnapshots,
        ttlDays: repo.ttlDays,
        backend: repo.backend,
        allowHardlinks: repo.syncAllowHardlinks,
        prepareStaging: repo.prepareStaging,
        overlayMaxLayers: repo.overlayMaxLayers,
        ...(repo.keyPositions['sync-rcu-store-dir'] ? { storeDirPosition: repo.keyPositions['sync-rcu-store-dir'] } : {}),
      });
    case 'quarantine':
      return new QuarantineStorage(repo.name, repo.location);
    case 'in-place':
      return new InPlaceStorage(repo.name, repo.location);
  }
}
