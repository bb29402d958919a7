/**
 * Backends whose snapshots are ordinary directory trees (hardlink, copy):
 * they differ only in how a clone is made and whether they work on a store.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { tempName } from '../util/temp-name.js';
import { cloneTree } from '../tree/clone.js';
import type { ConcreteBackendName, SnapshotBackend } from './backend.js';

export function treeBackend(name: ConcreteBackendName, method: 'link' | 'reflink' | 'copy', probe: (storeDir: string) => Promise<boolean>): SnapshotBackend {
  return {
    name,
    sharesInodes: method === 'link',
    probe,
    clone(from, to, onEntry) {
      return cloneTree(from, to, { method, ...(onEntry ? { onEntry } : {}) });
    },
    async createEmpty(to) {
      await fs.mkdir(to, { mode: 0o755 });
    },
  };
}

/**
 * Whether `op(from, to)` works in the store: tried once on a scratch file in
 * it, which is removed again.
 */
export async function probeWith(storeDir: string, op: (from: string, to: string) => Promise<void>): Promise<boolean> {
  const a = tempName(path.join(storeDir, 'backend'), 'probe');
  const b = tempName(path.join(storeDir, 'backend-clone'), 'probe');
  try {
    await fs.writeFile(a, 'probe');
    await op(a, b);
    return true;
  } catch {
    return false;
  } finally {
    await fs.rm(a, { force: true });
    await fs.rm(b, { force: true });
  }
}
