/**
 * Modification stamps for trees changed in place (an installed-package
 * database such as /var/db/pkg, a location synced in place).
 *
 * `<root>/.modification_time` is rewritten before and after every
 * modification, each time as a new file renamed over the old one, so its
 * stat signature (device, inode, size, mtime to the nanosecond) changes every
 * time, even twice within one timestamp tick or on a filesystem with coarse
 * times: the inode number alone tells two writes apart. Its content says
 * whether a modification is in progress (and by which pid) and carries a
 * counter that only grows. After a modification the root directory's mtime
 * is bumped too, for consumers that follow that convention (Portage, pkgcore).
 *
 * Modifiers serialise on an exclusive OFD lock on
 * `<root>/.modification_time.lock`, held for the whole modification. A
 * modifier that dies leaves "in progress" behind; a reader sees that the lock
 * is free and reports the writer dead, and the next modification clears it.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, ReposnapError } from '../errors.js';
import { FileLock } from '../lock/file-lock.js';
import { atomicWriteFile } from '../util/fs.js';

export const STAMP_FILE = '.modification_time';
export const STAMP_LOCK = '.modification_time.lock';

export interface StampContent {
  counter: number;
  inProgress: boolean;
  /** The modifying process while in progress, else the last one. */
  pid: number | null;
  /** ISO time of the last write of the stamp. */
  time: string | null;
}

export interface Stamp extends StampContent {
  /** dev:ino:size:mtime-ns of the stamp file; "none" when there is none. */
  signature: string;
  /** In progress, but its writer no longer holds the lock: it died. */
  writerDead: boolean;
}

/** The stamp's stat signature: one lstat, the cheap check caches use. */
export async function stampSignature(root: string): Promise<string> {
  try {
    const st = await fs.lstat(path.join(root, STAMP_FILE), { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'none';
    throw err;
  }
}

/** Read the stamp (content, signature, and whether a writer died mid-way). */
export async function readStamp(root: string): Promise<Stamp> {
  // Signature before content: if a writer renames in between, the signature
  // is older than the content and a cache keyed on it is merely refreshed
  // once more, never trusted wrongly.
  const signature = await stampSignature(root);
  let content: StampContent = { counter: 0, inProgress: false, pid: null, time: null };
  try {
    content = parseStamp(await fs.readFile(path.join(root, STAMP_FILE), 'utf8'));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw err;
  }
  const writerDead = content.inProgress && !(await FileLock.isHeld(path.join(root, STAMP_LOCK)));
  return { ...content, signature, writerDead };
}

function parseStamp(text: string): StampContent {
  try {
    const j = JSON.parse(text) as Partial<StampContent>;
    return {
      counter: typeof j.counter === 'number' ? j.counter : 0,
      inProgress: j.inProgress === true,
      pid: typeof j.pid === 'number' ? j.pid : null,
      time: typeof j.time === 'string' ? j.time : null,
    };
  } catch {
    // A stamp from another tool (the gentoo-dev proposal's was just a file
    // whose mtime mattered): treat as counter 0, not in progress.
    return { counter: 0, inProgress: false, pid: null, time: null };
  }
}

function writeStamp(root: string, content: StampContent): Promise<void> {
  // A new file renamed over the old one: a new inode, so a new signature.
  return atomicWriteFile(path.join(root, STAMP_FILE), `${JSON.stringify(content)}\n`);
}

/** An open modification of a tree: stamped "in progress" until ended. */
export class Modification {
  private ended = false;
  private constructor(
    readonly root: string,
    private readonly lock: FileLock,
    private counter: number,
  ) {}

  /** Take the tree's lock and stamp it "in progress". */
  static async begin(root: string, opts: { wait?: boolean } = {}): Promise<Modification> {
    const st = await fs.stat(root).catch(() => undefined);
    if (!st?.isDirectory()) throw new ReposnapError('EUSAGE', `${root} is not a directory`);
    const lock = await FileLock.acquire(path.join(root, STAMP_LOCK), {
      wait: opts.wait ?? true,
      operation: 'modify',
      busyMessage: (h) => `${root} is being modified${h ? ` by pid ${h.pid}` : ''}`,
    });
    try {
      const { counter } = await readStamp(root);
      const m = new Modification(root, lock, counter);
      await m.stamp(true);
      return m;
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  private async stamp(inProgress: boolean): Promise<void> {
    this.counter++;
    await writeStamp(this.root, { counter: this.counter, inProgress, pid: process.pid, time: new Date().toISOString() });
  }

  /** Stamp "done", bump the root directory's mtime, release the lock. */
  async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    try {
      await this.stamp(false);
      const now = new Date();
      await fs.utimes(this.root, now, now);
    } finally {
      await this.lock.release();
    }
  }
}

/** Run `fn` as one modification of `root`: stamped before and after, also when it throws. */
export async function modify<T>(root: string, fn: () => Promise<T>, opts: { wait?: boolean } = {}): Promise<T> {
  const m = await Modification.begin(root, opts);
  try {
    return await fn();
  } finally {
    await m.end();
  }
}
