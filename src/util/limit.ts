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
