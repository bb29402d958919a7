/**
 * Hardlink backend: a clone shares every file's inode with the snapshot it
 * came from. That is only safe because nothing in reposnap (nor rsync without
 * --inplace) writes into an existing file: a changed file is always written
 * under a new name and renamed over the link.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { treeBackend } from './tree-backend.js';

/** Whether a hardlink can be made inside the store. */
async function canLink(storeDir: string): Promise<boolean> {
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
}

export const hardlinkBackend = treeBackend('hardlink', 'link', canLink);
