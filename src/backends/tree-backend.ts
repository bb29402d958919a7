/**
 * Backends whose snapshots are ordinary directory trees (hardlink, copy):
 * they differ only in how a clone is made and whether they work on a store.
 */
import fs from 'node:fs/promises';
import { removeTree, syncFilesystem } from '../util/fs.js';
import { cloneTree } from '../util/tree.js';
import type { ConcreteBackendName, SnapshotBackend } from './backend.js';

export function treeBackend(name: ConcreteBackendName, method: 'link' | 'reflink' | 'copy', probe: (storeDir: string) => Promise<boolean>): SnapshotBackend {
  return {
    name,
    probe,
    clone(from, to, onEntry) {
      return cloneTree(from, to, { method, ...(onEntry ? { onEntry } : {}) });
    },
    async createEmpty(to) {
      await fs.mkdir(to, { mode: 0o755 });
    },
    seal(dir) {
      return syncFilesystem(dir);
    },
    remove(dir) {
      return removeTree(dir);
    },
  };
}
