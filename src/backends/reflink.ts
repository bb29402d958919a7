/**
 * Reflink backend: every file is cloned with FICLONE (copyFile with
 * COPYFILE_FICLONE_FORCE), so snapshots share data blocks but not inodes.
 * No hardlink hazards: a snapshot's file metadata (mode, owner, times) is its
 * own, and even a tool that wrote in place would only unshare blocks.
 * Needs a filesystem that can clone (btrfs, xfs with reflink=1, ...).
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { treeBackend } from './tree-backend.js';

async function canReflink(storeDir: string): Promise<boolean> {
  const a = path.join(storeDir, `.probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const b = `${a}.clone`;
  try {
    await fs.writeFile(a, 'probe');
    await fs.copyFile(a, b, fsc.COPYFILE_FICLONE_FORCE);
    return true;
  } catch {
    return false;
  } finally {
    await fs.rm(a, { force: true });
    await fs.rm(b, { force: true });
  }
}

export const reflinkBackend = treeBackend('reflink', 'reflink', canReflink);
