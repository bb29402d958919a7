/**
 * StampedCache: data derived from a tree, stored with the generation of the
 * tree it was derived from, and trusted again after one cheap check.
 *
 * A generation is a key that changes whenever the tree may have changed:
 * - a tree modified in place: the stat signature of its modification stamp
 *   (one lstat); a modification in progress is never trusted;
 * - an RCU repository: the id of its current snapshot (one readlink);
 *   snapshots never change, so there is nothing in progress.
 *
 * get(): if the key equals the stored one, return the stored value. Else
 * compute; store the result only if no modification was in progress and the
 * key did not change while computing (a value computed from a tree in flux
 * is returned to the caller, but never cached).
 */
import fs from 'node:fs/promises';
import { atomicWriteFile } from '../util/fs.js';
import { readStamp, stampSignature } from './stamp.js';

export interface Generation {
  /** The cheap check: a key that changes whenever the tree may have. */
  key(): Promise<string>;
  /** The full state: the key, and whether a modification is in progress. */
  state(): Promise<{ key: string; inProgress: boolean }>;
}

/** The generation of a directory modified in place, from its stamp. */
export function stampGeneration(root: string): Generation {
  return {
    key: () => stampSignature(root),
    async state() {
      const s = await readStamp(root);
      return { key: s.signature, inProgress: s.inProgress };
    },
  };
}

export interface CacheResult<T> {
  value: T;
  /** Served from the cache without computing. */
  hit: boolean;
  /** Computed and stored (false for a hit, or a value computed from a tree in flux). */
  stored: boolean;
}

interface Entry<T> {
  key: string;
  value: T;
}

export class StampedCache<T> {
  private entry: Entry<T> | undefined;

  /**
   * @param generation how to tell the tree changed
   * @param compute derives the value from the tree
   * @param file where to keep the value between processes (JSON); memory only if absent
   */
  constructor(
    private readonly generation: Generation,
    private readonly compute: () => Promise<T>,
    private readonly file?: string,
  ) {}

  async get(): Promise<CacheResult<T>> {
    const key = await this.generation.key();
    const known = this.entry ?? (await this.load());
    if (known && known.key === key) return { value: known.value, hit: true, stored: false };

    const before = await this.generation.state();
    const value = await this.compute();
    const after = await this.generation.key();
    if (before.inProgress || after !== before.key) return { value, hit: false, stored: false };
    this.entry = { key: before.key, value };
    if (this.file) await atomicWriteFile(this.file, JSON.stringify(this.entry));
    return { value, hit: false, stored: true };
  }

  /** Forget the stored value. */
  async clear(): Promise<void> {
    this.entry = undefined;
    if (this.file) await fs.rm(this.file, { force: true });
  }

  private async load(): Promise<Entry<T> | undefined> {
    if (!this.file) return undefined;
    try {
      const e = JSON.parse(await fs.readFile(this.file, 'utf8')) as Entry<T>;
      if (typeof e.key !== 'string') return undefined;
      this.entry = e;
      return e;
    } catch {
      return undefined;
    }
  }
}
