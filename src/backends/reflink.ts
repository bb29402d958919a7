/**
 * Reflink backend: every file is cloned with FICLONE (copyFile with
 * COPYFILE_FICLONE_FORCE), so snapshots share data blocks but not inodes.
 * No hardlink hazards: a snapshot's file metadata (mode, owner, times) is its
 * own, and even a tool that wrote in place would only unshare blocks.
 * Needs a filesystem that can clone (btrfs, xfs with reflink=1, ...).
 */
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { probeWith, treeBackend } from './tree-backend.js';

export const reflinkBackend = treeBackend('reflink', 'reflink', (storeDir) =>
  probeWith(storeDir, (a, b) => fs.copyFile(a, b, fsc.COPYFILE_FICLONE_FORCE)),
);
