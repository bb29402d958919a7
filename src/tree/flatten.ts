/**
 * Flattening a stack of overlay layers into one plain tree: the tree a
 * read-only overlay of the stack shows, made of links to the layers' files.
 *
 * The bottom layer is a whole tree; it is cloned by links (GNU cp, one call
 * per entry). Only folders some upper layer has can differ from it (a change
 * anywhere in a folder copies the folder up), so only those are compared
 * with the merged view, parents first: each name there is linked from the
 * topmost layer that has it (whiteouts are character devices, and never the
 * topmost for a name the merged view shows), names the merged view lacks
 * are removed, and each folder then gets the merged folder's mode, owner
 * and times, deepest first. Opaque folders need no reading of attributes:
 * the merged listing is the truth, the layers only say where a name's
 * inode is. Cost: the bottom's clone plus a few listings per changed folder.
 *
 * Layers are never written, so sharing their inodes is safe: an overlay on
 * the flattened tree copies a file up before changing it, and a plain tree
 * made of it (revert) is given to a location that owns it from then on.
 */
import type { Dirent } from 'node:fs';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { isRoot } from '../util/identity.js';
import { FS_CONCURRENCY, Limiter, settleAll } from '../util/limit.js';
import { copyAttributes } from './attributes.js';
import { bjoin, bpath, type BPath } from './bytes.js';
import { cloneTree } from './clone.js';

export interface FlattenStats {
  /** Folders compared with the merged view. */
  folders: number;
  /** Entries linked from an upper layer (or copied where a link was impossible). */
  linked: number;
  /** Entries of the bottom layer that the stack deletes or replaces. */
  removed: number;
}

const EMPTY = Buffer.alloc(0);

function relJoin(rel: BPath, name: BPath): BPath {
  return rel.length === 0 ? name : bjoin(rel, name);
}

function under(root: BPath, rel: BPath): BPath {
  return rel.length === 0 ? root : bjoin(root, rel);
}

async function listing(dir: BPath): Promise<Map<string, Dirent<Buffer>> | undefined> {
  try {
    const entries = await fs.readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    return new Map(entries.map((e) => [e.name.toString('latin1'), e]));
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

function sameType(a: Dirent<Buffer>, b: Dirent<Buffer>): boolean {
  return a.isDirectory() === b.isDirectory() && a.isFile() === b.isFile() && a.isSymbolicLink() === b.isSymbolicLink();
}

/** Every folder below `root` (relative), `root` itself as the empty path. */
async function foldersOf(root: BPath, rel: BPath, into: Map<string, BPath>, limiter: Limiter): Promise<void> {
  into.set(rel.toString('latin1'), rel);
  const entries = await limiter.run(() => listing(under(root, rel)));
  if (!entries) return;
  const subdirs: Array<Promise<void>> = [];
  for (const e of entries.values()) if (e.isDirectory()) subdirs.push(foldersOf(root, relJoin(rel, e.name), into, limiter));
  await settleAll(subdirs);
}

/** Link (or, where a link is impossible, copy) the entry `src` as `dst`, which does not exist. */
async function linkEntry(src: BPath, dst: BPath): Promise<void> {
  try {
    await fs.link(src, dst);
    return;
  } catch (err) {
    if (errnoCode(err) !== 'EMLINK') throw err;
  }
  const st = await fs.lstat(src);
  if (st.isSymbolicLink()) {
    await fs.symlink(await fs.readlink(src, { encoding: 'buffer' }), dst);
    await fs.lutimes(dst, st.atime, st.mtime);
    if (isRoot) await fs.lchown(dst, st.uid, st.gid);
  } else {
    await fs.copyFile(src, dst, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    await copyAttributes(dst, st);
  }
}

/**
 * Make `to` (which must not exist) the tree `merged` shows, where `merged`
 * is a read-only overlay of `layers` (top first; the last a whole tree).
 */
export async function flattenLayers(merged: string, layers: string[], to: string): Promise<FlattenStats> {
  const stats: FlattenStats = { folders: 0, linked: 0, removed: 0 };
  const bottomIndex = layers.length - 1;
  await cloneTree(layers[bottomIndex] as string, to, { method: 'link' });
  const limiter = new Limiter(FS_CONCURRENCY);
  const roots = layers.map(bpath);
  const mergedRoot = bpath(merged);
  const toRoot = bpath(to);

  const folders = new Map<string, BPath>();
  for (const layer of roots.slice(0, bottomIndex)) await foldersOf(layer, EMPTY, folders, limiter);
  // Parents first: a folder's own comparison makes or removes its subfolders.
  const byDepth = new Map<number, BPath[]>();
  for (const rel of folders.values()) {
    const depth = rel.length === 0 ? 0 : rel.filter((b) => b === 0x2f).length + 1;
    byDepth.set(depth, [...(byDepth.get(depth) ?? []), rel]);
  }
  const done: BPath[][] = [];

  const reconcile = async (rel: BPath): Promise<boolean> => {
    const [shown, have, ...inLayers] = await Promise.all([
      limiter.run(() => listing(under(mergedRoot, rel))),
      limiter.run(() => listing(under(toRoot, rel))),
      ...roots.map((r) => limiter.run(() => listing(under(r, rel)))),
    ]);
    if (!shown || !have) return false; // deleted or replaced higher up: its parent saw to it
    stats.folders++;
    const work: Array<Promise<void>> = [];
    for (const [key, entry] of have) {
      if (shown.has(key)) continue;
      stats.removed++;
      work.push(limiter.run(() => fs.rm(bjoin(under(toRoot, rel), entry.name), { recursive: true, force: true })));
    }
    for (const [key, want] of shown) {
      const dst = bjoin(under(toRoot, rel), want.name);
      const present = have.get(key);
      if (want.isDirectory()) {
        if (present?.isDirectory()) continue;
        work.push(
          limiter.run(async () => {
            if (present) await fs.rm(dst, { force: true });
            await fs.mkdir(dst, { mode: 0o700 });
          }),
        );
        continue;
      }
      const from = inLayers.findIndex((l) => {
        const e = l?.get(key);
        return e !== undefined && !e.isCharacterDevice() && !e.isDirectory();
      });
      if (from < 0) throw new Error(`flattening: no layer holds ${under(mergedRoot, relJoin(rel, want.name)).toString()}`);
      // The bottom's entry is in place already, unless something replaced it.
      if (from === bottomIndex && present && sameType(present, want)) continue;
      const src = bjoin(under(roots[from] as BPath, rel), want.name);
      stats.linked++;
      work.push(
        limiter.run(async () => {
          if (present) await fs.rm(dst, { recursive: true, force: true });
          await linkEntry(src, dst);
        }),
      );
    }
    await settleAll(work);
    return true;
  };

  for (const depth of [...byDepth.keys()].sort((a, b) => a - b)) {
    const level = byDepth.get(depth) as BPath[];
    const kept: BPath[] = [];
    await settleAll(level.map(async (rel) => (await reconcile(rel)) && kept.push(rel)));
    done.push(kept);
  }
  // Filling a folder changes its times: attributes last, deepest first.
  for (const level of done.reverse()) {
    await settleAll(level.map((rel) => limiter.run(async () => copyAttributes(under(toRoot, rel), await fs.lstat(under(mergedRoot, rel))))));
  }
  return stats;
}
