/**
 * A counting semaphore for bounding how many filesystem operations are in
 * flight at once. Tree walks issue one promise per entry; without a bound a
 * 100k-file tree would queue 100k requests on libuv's four threads and hold
 * every pending result in memory at once.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // Hand the slot straight to the next waiter, or free it.
      if (next) next();
      else this.active--;
    }
  }
}

/** The default bound for filesystem work: enough to keep libuv's pool busy. */
export const FS_CONCURRENCY = 32;

/**
 * Run `fn` over `items` with at most `n` in flight; wait for all, then throw
 * the first failure. Used for directory recursion, where unbounded fan-out
 * would hold the whole tree's listings in memory at once.
 */
export async function mapLimit<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failure !== undefined) throw failure;
}

/** Directories walked at once per level of a tree walk. */
export const DIR_CONCURRENCY = 4;

/**
 * Wait for every promise, then throw the first failure. Promise.all would
 * return at the first error while other operations still write into the tree
 * that the caller is about to remove.
 */
export async function settleAll(promises: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}
