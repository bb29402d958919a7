/**
 * The hashing threads (src/trust/hash-pool.ts), from the build: the sources
 * have no worker script, so there the calling thread hashes everything.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { HashPool as HashPoolClass } from '../src/trust/hash-pool.js';
import { tmpdir } from './helpers.js';

const built = async (): Promise<typeof HashPoolClass> => ((await import(new URL('../dist/trust/hash-pool.js', import.meta.url).href)) as { HashPool: typeof HashPoolClass }).HashPool;

describe('the hashing threads', () => {
  it('answer every request when they go: the others take over, then the calling thread', async () => {
    const HashPool = await built();
    const dir = tmpdir('hash-pool');
    const files = await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        const file = path.join(dir, `f${i}`);
        const data = Buffer.alloc(1000 + i * 37, i % 251);
        await fs.writeFile(file, data);
        return { file, size: data.length, want: createHash('sha512').update(data).digest('hex') };
      }),
    );
    const pool = new HashPool(2);
    const threads = [...(pool as unknown as { workers: Worker[] }).workers];
    expect(threads).toHaveLength(2);
    const ask = (from: number, to: number) => files.slice(from, to).map((f) => pool.hash({ file: f.file, size: f.size, algorithms: ['sha512'] }));
    try {
      const asked = ask(0, 100);
      // One thread goes with work in hand, then the other: nothing is lost, nothing waits for ever.
      await (threads[0] as Worker).terminate();
      asked.push(...ask(100, 200));
      await (threads[1] as Worker).terminate();
      asked.push(...ask(200, 300));
      const got = await Promise.all(asked);
      expect(got).toEqual(files.map((f) => ({ digests: [f.want] })));
    } finally {
      await pool.close();
    }
  });
});
