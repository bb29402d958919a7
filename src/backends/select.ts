/**
 * Choosing a backend for a store, as pnpm chooses its importer: probe the
 * cheapest method once, fall back to the next, and remember the answer for
 * the life of the process.
 */
import type { BackendName } from '../config/repos.js';
import type { ConcreteBackendName, SnapshotBackend } from './backend.js';
import { copyBackend } from './copy.js';
import { hardlinkBackend } from './hardlink.js';

const BACKENDS: Record<ConcreteBackendName, SnapshotBackend> = {
  hardlink: hardlinkBackend,
  copy: copyBackend,
};

/** Cheapest first. */
const AUTO_ORDER: ConcreteBackendName[] = ['hardlink', 'copy'];

const probed = new Map<string, ConcreteBackendName>();

export function backendByName(name: ConcreteBackendName): SnapshotBackend {
  return BACKENDS[name];
}

/**
 * The backend for a store. `allowHardlinks` = false (sync-allow-hardlinks =
 * no) takes hardlinks out of the automatic choice.
 */
export async function chooseBackend(wanted: BackendName, storeDir: string, allowHardlinks: boolean): Promise<SnapshotBackend> {
  if (wanted !== 'auto') return BACKENDS[wanted];
  const key = `${storeDir}\0${allowHardlinks}`;
  const known = probed.get(key);
  if (known) return BACKENDS[known];
  for (const name of AUTO_ORDER) {
    if (name === 'hardlink' && !allowHardlinks) continue;
    if (await BACKENDS[name].probe(storeDir)) {
      probed.set(key, name);
      return BACKENDS[name];
    }
  }
  return copyBackend;
}
