/**
 * Hardlink backend: a clone shares every file's inode with the snapshot it
 * came from. That is only safe because nothing in reposnap (nor rsync without
 * --inplace) writes into an existing file: a changed file is always written
 * under a new name and renamed over the link.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { syncFilesystem, removeTree } from '../util/fs.js';
import { cloneTree } from '../util/tree.js';
import type { SnapshotBackend } from './backend.js';

export const hardlinkBackend: SnapshotBackend = {
  name: 'hardlink',

  async probe(storeDir) {
    const a = path.join(storeDir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
    const b = `${a}.link`;
    try {
      await fs.writeFile(a, '');
      await fs.link(a, b);
      return true;
    } catch {
      return false;
    } finally {
      await fs.rm(a, { force: true });
      await fs.rm(b, { force: true });
    }
  },

  clone(from, to, onEntry) {
    return cloneTree(from, to, { method: 'link', ...(onEntry ? { onEntry } : {}) });
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
