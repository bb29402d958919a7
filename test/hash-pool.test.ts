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

  it('hand each thread batches ahead while the calling thread does not turn its event loop', async () => {
    const HashPool = await built();
    const dir = tmpdir('hash-pool');
    const data = Buffer.from('an ebuild\n');
    const file = path.join(dir, 'f');
    await fs.writeFile(file, data);
    const want = createHash('blake2b512').update(data).digest('hex');
    const pool = new HashPool(2);
    const threads = [...(pool as unknown as { workers: Worker[] }).workers];
    expect(threads).toHaveLength(2);
    try {
      // Asked for all at once, with no turn of the event loop in between,
      // as the Manifests of a tree ask: no thread has answered yet, and
      // each already has more than its first batch in hand, so that it
      // goes on hashing while the caller goes on reading.
      const asked = Array.from({ length: 64 * 8 }, () => pool.hash({ file, size: data.length, algorithms: ['blake2b512'] }));
      const handed = (pool as unknown as { handed: Map<Worker, number> }).handed;
      for (const t of threads) expect(handed.get(t)).toBeGreaterThan(1);
      // What is in hand past the first batch is answered all the same.
      const got = await Promise.all(asked);
      expect(got.every((r) => 'digests' in r && r.digests[0] === want)).toBe(true);
      expect([...handed.values()]).toEqual([0, 0]);
    } finally {
      await pool.close();
    }
  });
});
