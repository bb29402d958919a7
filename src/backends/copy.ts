/**
 * Copy backend: every clone is a full copy. The fallback that works on any
 * filesystem, including where hardlinks are impossible or forbidden
 * (sync-allow-hardlinks = no).
 */
import fs from 'node:fs/promises';
import { removeTree, syncFilesystem } from '../util/fs.js';
import { cloneTree } from '../util/tree.js';
import type { SnapshotBackend } from './backend.js';

export const copyBackend: SnapshotBackend = {
  name: 'copy',

  probe() {
    return Promise.resolve(true);
  },

  clone(from, to, onEntry) {
    return cloneTree(from, to, { method: 'copy', ...(onEntry ? { onEntry } : {}) });
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
