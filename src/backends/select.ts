/**
 * Choosing a backend for a store, as pnpm chooses its importer: probe the
 * cheapest method once, fall back to the next, and remember the answer for
 * the life of the process.
 */
import type { BackendName } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import type { ConcreteBackendName, SnapshotBackend } from './backend.js';
import { btrfsBackend } from './btrfs.js';
import { copyBackend } from './copy.js';
import { hardlinkBackend } from './hardlink.js';
import { overlayfsBackend } from './overlayfs.js';
import { reflinkBackend } from './reflink.js';

const BACKENDS: Record<ConcreteBackendName, SnapshotBackend> = {
  btrfs: btrfsBackend,
  reflink: reflinkBackend,
  hardlink: hardlinkBackend,
  copy: copyBackend,
  overlayfs: overlayfsBackend,
};

/**
 * btrfs subvolume snapshots cost the same whatever the tree's size; reflinks
 * cost a clone call per file but share no inodes; hardlinks one link per
 * file; copies everything. overlayfs is never chosen automatically: its
 * snapshots are mounts, which must be brought back after every reboot
 * (`reposnap mount`) and are seen only in the mount namespace that made
 * them (docs/design.md, "overlayfs").
 */
const AUTO_ORDER: ConcreteBackendName[] = ['btrfs', 'reflink', 'hardlink', 'copy'];

const probed = new Map<string, ConcreteBackendName>();

const WHY: Record<ConcreteBackendName, string> = {
  btrfs: ' (it needs the store on btrfs, btrfs-progs, and root to create subvolumes)',
  reflink: ' (its filesystem cannot clone files: it needs btrfs, xfs with reflink=1 or similar)',
  hardlink: ' (hardlinks cannot be made there)',
  copy: '',
  overlayfs: ' (it needs root, overlayfs in the kernel and a store filesystem overlayfs can write to, such as ext4, xfs or btrfs)',
};

export function backendByName(name: ConcreteBackendName): SnapshotBackend {
  return BACKENDS[name];
}

/**
 * The backend for a store. `allowHardlinks` = false (sync-allow-hardlinks =
 * no) takes hardlinks out of the automatic choice.
 */
export async function chooseBackend(wanted: BackendName, storeDir: string, allowHardlinks: boolean): Promise<SnapshotBackend> {
  const key = `${storeDir}\0${allowHardlinks}\0${wanted}`;
  if (wanted !== 'auto') {
    if (probed.get(key) === wanted) return BACKENDS[wanted];
    const works = await BACKENDS[wanted].probe(storeDir);
    if (works !== true) {
      const why = typeof works === 'string' ? ` (${works})` : WHY[wanted];
      throw new ReposnapError('ESTORE', `sync-rcu-backend = ${wanted} does not work for the store ${storeDir}${why}`);
    }
    probed.set(key, wanted);
    return BACKENDS[wanted];
  }
  const known = probed.get(key);
  if (known) return BACKENDS[known];
  for (const name of AUTO_ORDER) {
    if (name === 'hardlink' && !allowHardlinks) continue;
    if ((await BACKENDS[name].probe(storeDir)) === true) {
      probed.set(key, name);
      return BACKENDS[name];
    }
  }
  throw new ReposnapError('ESTORE', `no snapshot backend works for the store ${storeDir}: not even copying files (is it read-only or full?)`);
}
