/**
 * Hardlink backend: a clone shares every file's inode with the snapshot it
 * came from. That is only safe because nothing in reposnap (nor rsync without
 * --inplace) writes into an existing file: a changed file is always written
 * under a new name and renamed over the link.
 */
import fs from 'node:fs/promises';
import { probeWith, treeBackend } from './tree-backend.js';

export const hardlinkBackend = treeBackend('hardlink', 'link', (storeDir) => probeWith(storeDir, (a, b) => fs.link(a, b)));
