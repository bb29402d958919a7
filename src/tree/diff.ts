/**
 * What differs between two trees, entry by entry: what one has and the other
 * has not, and what both have but differ in (type, size, time, mode, owner,
 * symlink target). For `reposnap diff`, between two snapshots of a store.
 *
 * Snapshots share inodes (hardlinks) or are read-only, and an entry with the
 * same inode in both is the same entry: no stat of its content is needed
 * beyond the one that tells so. Otherwise files are judged by the quick
 * check every comparison in reposnap makes (compare.ts), not by content.
 * Names are bytes; the walk goes one folder at a time, in name order, so
 * the result comes out sorted and memory holds a folder, not a tree.
 */
import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import { bjoin, type BPath } from './bytes.js';
import { sameFile, sameOwnerMode, sameTime } from './compare.js';

export interface TreeChange {
  kind: 'added' | 'removed' | 'changed';
  /** Relative to the top, as bytes. */
  path: BPath;
  /** What the entry is (in the second tree, or the first for a removal). */
  type: 'file' | 'dir' | 'symlink' | 'other';
}

function typeOf(st: Stats): TreeChange['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** Every difference between the trees at `a` and `b`, sorted by path (a folder before what it holds). */
export async function diffTrees(a: string, b: string): Promise<TreeChange[]> {
  const out: TreeChange[] = [];
  const all = async (root: BPath, rel: BPath, kind: 'added' | 'removed'): Promise<void> => {
    for (const name of (await fs.readdir(root, { encoding: 'buffer' })).sort(Buffer.compare)) {
      const p = bjoin(root, name);
      const r = relJoin(rel, name);
      const st = await fs.lstat(p);
      out.push({ kind, path: r, type: typeOf(st) });
      if (st.isDirectory()) await all(p, r, kind);
    }
  };
  const walk = async (da: BPath, db: BPath, rel: BPath): Promise<void> => {
    const [na, nb] = await Promise.all([fs.readdir(da, { encoding: 'buffer' }), fs.readdir(db, { encoding: 'buffer' })]);
    const names = [...new Map([...na, ...nb].map((n) => [n.toString('latin1'), n])).values()].sort(Buffer.compare);
    const inA = new Set(na.map((n) => n.toString('latin1')));
    const inB = new Set(nb.map((n) => n.toString('latin1')));
    for (const name of names) {
      const key = name.toString('latin1');
      const pa = bjoin(da, name);
      const pb = bjoin(db, name);
      const r = relJoin(rel, name);
      if (!inB.has(key)) {
        const st = await fs.lstat(pa);
        out.push({ kind: 'removed', path: r, type: typeOf(st) });
        if (st.isDirectory()) await all(pa, r, 'removed');
        continue;
      }
      if (!inA.has(key)) {
        const st = await fs.lstat(pb);
        out.push({ kind: 'added', path: r, type: typeOf(st) });
        if (st.isDirectory()) await all(pb, r, 'added');
        continue;
      }
      const [sa, sb] = await Promise.all([fs.lstat(pa), fs.lstat(pb)]);
      if (sa.isDirectory() && sb.isDirectory()) {
        if (!sameOwnerMode(sa, sb)) out.push({ kind: 'changed', path: r, type: 'dir' });
        await walk(pa, pb, r);
      } else if (typeOf(sa) !== typeOf(sb)) {
        // A type change: the old entry (and all below it) goes, the new one comes.
        out.push({ kind: 'removed', path: r, type: typeOf(sa) });
        if (sa.isDirectory()) await all(pa, r, 'removed');
        out.push({ kind: 'added', path: r, type: typeOf(sb) });
        if (sb.isDirectory()) await all(pb, r, 'added');
      } else if (!(await sameEntry(pa, pb, sa, sb))) {
        out.push({ kind: 'changed', path: r, type: typeOf(sb) });
      }
    }
  };
  await walk(Buffer.from(a), Buffer.from(b), Buffer.alloc(0));
  return out;
}

async function sameEntry(pa: BPath, pb: BPath, a: Stats, b: Stats): Promise<boolean> {
  if (a.dev === b.dev && a.ino === b.ino) return true;
  if (a.isSymbolicLink()) {
    const [ta, tb] = await Promise.all([fs.readlink(pa, { encoding: 'buffer' }), fs.readlink(pb, { encoding: 'buffer' })]);
    return ta.equals(tb) && sameOwnerMode(a, b) && sameTime(a, b);
  }
  if (a.isFile()) return sameFile(a, b);
  return sameOwnerMode(a, b);
}

function relJoin(rel: BPath, name: BPath): BPath {
  return rel.length === 0 ? name : bjoin(rel, name);
}
