/**
 * The cp clone split into lanes (src/tree/cp-clone.ts) must make exactly
 * the tree one `cp -T` makes: every entry's type, mode, owner, times to the
 * nanosecond, link target and (hardlinks) inode, the top folder's own
 * attributes included, with names cp could mistake for options, and a
 * top-level name that is not UTF-8 (which cannot be an argument, so the
 * clone is done whole).
 */
import { execFileSync } from 'node:child_process';
import type { BigIntStats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cloneLanes, cpClone } from '../src/tree/cp-clone.js';
import { isRoot, tmpdir } from './helpers.js';

interface Entry {
  type: string;
  mode: number;
  uid: bigint;
  gid: bigint;
  mtime: bigint;
  ino?: bigint;
  target?: string;
}

/** Every entry below `root` (and `root` itself as ""), by its raw name. */
async function snapshot(root: string, withInodes: boolean): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (dir: Buffer, rel: string): Promise<void> => {
    const st: BigIntStats = await fs.lstat(dir, { bigint: true });
    const e: Entry = { type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file', mode: Number(st.mode & 0o7777n), uid: st.uid, gid: st.gid, mtime: st.mtimeNs };
    // Not atimes: reading the source (readlink, readdir) moves them.
    if (st.isSymbolicLink()) e.target = (await fs.readlink(dir, { encoding: 'buffer' })).toString('latin1');
    else if (!st.isDirectory() && withInodes) e.ino = st.ino;
    out.set(rel, e);
    if (!st.isDirectory()) return;
    for (const n of await fs.readdir(dir, { encoding: 'buffer' })) await walk(Buffer.concat([dir, Buffer.from('/'), n]), `${rel}/${n.toString('latin1')}`);
  };
  await walk(Buffer.from(root), '');
  return out;
}

/** `dst` holds the same entries as `src`, each alike (and, `withInodes`, the same inodes for files). */
async function expectSameTree(dst: string, src: string, withInodes: boolean): Promise<void> {
  const got = await snapshot(dst, withInodes);
  const want = await snapshot(src, withInodes);
  expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
  for (const [k, v] of want) expect({ k, ...got.get(k) }).toEqual({ k, ...v });
}

async function makeTree(root: string): Promise<void> {
  await fs.mkdir(root);
  // Folders of very different sizes, so that lanes get unequal shares.
  for (let c = 0; c < 6; c++) {
    for (let p = 0; p < 3 + c * 5; p++) {
      const d = path.join(root, `cat${c}`, `pkg${p}`);
      await fs.mkdir(d, { recursive: true });
      for (let f = 0; f < 3; f++) await fs.writeFile(path.join(d, `f${f}`), `${c}/${p}/${f}\n`);
    }
  }
  await fs.mkdir(path.join(root, 'metadata', 'md5-cache', 'a'), { recursive: true });
  for (let f = 0; f < 40; f++) await fs.writeFile(path.join(root, 'metadata', 'md5-cache', 'a', `x${f}`), `${f}`);
  await fs.writeFile(path.join(root, '--help'), 'not an option\n');
  await fs.mkdir(path.join(root, '-t'));
  await fs.writeFile(path.join(root, '-t', 'inner'), 'in -t\n');
  await fs.writeFile(path.join(root, 'with space'), 'spaced\n', { mode: 0o640 });
  await fs.symlink('cat0/pkg0', path.join(root, 'link'));
  await fs.symlink('dangling', path.join(root, 'broken'));
  await fs.chmod(path.join(root, 'cat1'), 0o2750);
  execFileSync('touch', ['-h', '-d', '2001-02-03 04:05:06.123456789', path.join(root, 'link')]);
  execFileSync('touch', ['-d', '2001-02-03 04:05:06.987654321', path.join(root, 'cat2')]);
  if (isRoot) {
    await fs.lchown(path.join(root, 'cat3'), 1234, 2345);
    await fs.lchown(root, 4321, 5432);
  }
  // The top's own attributes, set last: cp -T carries them over.
  await fs.chmod(root, 0o751);
  execFileSync('touch', ['-d', '2002-03-04 05:06:07.111222333', root]);
}

describe('cp clone in lanes', () => {
  const saved = process.env.REPOSNAP_CLONE_LANES;
  afterEach(() => {
    if (saved === undefined) delete process.env.REPOSNAP_CLONE_LANES;
    else process.env.REPOSNAP_CLONE_LANES = saved;
  });

  it('makes the same tree as one cp, top folder included', async () => {
    const dir = tmpdir('cp-clone');
    const src = path.join(dir, 'src');
    await makeTree(src);
    for (const lanes of ['1', '2', '3']) {
      process.env.REPOSNAP_CLONE_LANES = lanes;
      expect(cloneLanes()).toBe(Number(lanes));
      const dst = path.join(dir, `dst${lanes}`);
      expect(await cpClone(src, dst, 'link', false)).toBe(true);
      await expectSameTree(dst, src, true);
    }
    // Copies too (own inodes, same attributes).
    process.env.REPOSNAP_CLONE_LANES = '2';
    const copy = path.join(dir, 'copy');
    expect(await cpClone(src, copy, 'copy', false)).toBe(true);
    await expectSameTree(copy, src, false);
    expect((await fs.stat(path.join(copy, 'cat0/pkg0/f0'))).ino).not.toBe((await fs.stat(path.join(src, 'cat0/pkg0/f0'))).ino);
  });

  it('takes relative paths as the caller means them', async () => {
    const dir = tmpdir('cp-clone');
    const src = path.join(dir, 'src');
    await makeTree(src);
    process.env.REPOSNAP_CLONE_LANES = '2';
    const dst = path.join(dir, 'rel');
    expect(await cpClone(path.relative(process.cwd(), src), path.relative(process.cwd(), dst), 'link', false)).toBe(true);
    await expectSameTree(dst, src, true);
  });

  it('fills an existing folder the same way (a subvolume)', async () => {
    const dir = tmpdir('cp-clone');
    const src = path.join(dir, 'src');
    await makeTree(src);
    process.env.REPOSNAP_CLONE_LANES = '2';
    const dst = path.join(dir, 'dst');
    await fs.mkdir(dst);
    expect(await cpClone(src, dst, 'link', true)).toBe(true);
    await expectSameTree(dst, src, true);
  });

  it('clones whole where a top-level name is not UTF-8', async () => {
    const dir = tmpdir('cp-clone');
    const src = path.join(dir, 'src');
    await makeTree(src);
    const odd = Buffer.concat([Buffer.from(`${src}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('-name')]);
    await fs.writeFile(odd, 'latin1 bytes\n');
    execFileSync('touch', ['-d', '2002-03-04 05:06:07.111222333', src]);
    process.env.REPOSNAP_CLONE_LANES = '2';
    const dst = path.join(dir, 'dst');
    expect(await cpClone(src, dst, 'link', false)).toBe(true);
    await expectSameTree(dst, src, true);
  });

  it('leaves nothing behind when a lane fails', async () => {
    const dir = tmpdir('cp-clone');
    const src = path.join(dir, 'src');
    await makeTree(src);
    process.env.REPOSNAP_CLONE_LANES = '2';
    // Reflinks where the filesystem may not clone: either it works whole, or nothing is left.
    const dst = path.join(dir, 'dst');
    const ok = await cpClone(src, dst, 'reflink', false);
    if (ok) {
      await expectSameTree(dst, src, false);
    } else {
      await expect(fs.lstat(dst)).rejects.toMatchObject({ code: 'ENOENT' });
    }
  });
});
