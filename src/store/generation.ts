/**
 * What a cache of an RCU repository's content is keyed on: the snapshot
 * `latest` points at (see stamp/cache.ts for the cache, and the stamp-based
 * generation of trees changed in place).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import type { Generation } from '../stamp/cache.js';
import { parseLatestTarget } from './layout.js';

/** The generation of an RCU store: the snapshot `latest` points at. */
export function snapshotGeneration(storeDir: string): Generation {
  const key = async (): Promise<string> => {
    try {
      const id = parseLatestTarget(await fs.readlink(path.join(storeDir, 'latest')));
      return id === undefined ? 'none' : `snapshot:${id}`;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 'none';
      throw err;
    }
  };
  return { key, state: async () => ({ key: await key(), inProgress: false }) };
}
