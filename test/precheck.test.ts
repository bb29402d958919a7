/**
 * The local and rsync sources tell a no-op sync before cloning anything, by
 * comparing upstream with the current snapshot read-only. The comparison must
 * never call "unchanged" what the fill would change: each kind of change
 * below is made in a fresh store and must be committed; what the fill does
 * not count as a change (a directory's time) must not be either.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { treesDiffer } from '../src/tree/compare.js';
import { isRoot, rcuConf, readTree, tmpdir, writeTree } from './helpers.js';

async function setup(type: 'local' | 'rsync') {
  const dir = tmpdir();
  const up = path.join(dir, 'upstream');
  await writeTree(up, {
    'metadata/timestamp.chk': 'T1\n',
    'cat/pkg/pkg-1.ebuild': 'one\n',
    'cat/pkg/files/fix.patch': 'patch\n',
    'cat/other/other-1.ebuild': 'other\n',
    'deep/a/b/c/d/leaf': 'leaf\n',
    'link': { symlink: 'cat/pkg' },
    'empty': { dir: true, mode: 0o755 },
  });
  const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-spare-snapshots = 5\nsync-rcu-ttl-days = 0', type, up), path.join(dir, 'repos.conf')).get('test');
  expect((await repo.sync()).snapshot?.id).toBe(1);
  return { dir, up, repo };
}

/** Set a file's time back to the snapshot's, so that only what the case changes differs. */
async function sameTimes(file: string, like: string): Promise<void> {
  const st = await fs.lstat(like);
  await fs.lutimes(file, st.atime, st.mtime);
}

const changes: Array<[string, (up: string, snap: string) => Promise<void>]> = [
  ['a file rewritten with the same size and a new time', async (up, snap) => {
    const leaf = path.join(up, 'deep/a/b/c/d/leaf');
    await fs.writeFile(leaf, 'LEAF\n');
    // A later second: rsync's quick check (fill and precheck alike) compares whole seconds.
    const t = (await fs.stat(path.join(snap, 'deep/a/b/c/d/leaf'))).mtimeMs / 1000 + 5;
    await fs.utimes(leaf, t, t);
  }],
  ['a file with the same size and time but a new mode', async (up) => {
    await fs.chmod(path.join(up, 'deep/a/b/c/d/leaf'), 0o600);
  }],
  ['a new empty directory deep down', async (up) => {
    await fs.mkdir(path.join(up, 'deep/a/b/c/d/new'));
  }],
  ['a directory with a new mode', async (up) => {
    await fs.chmod(path.join(up, 'deep/a/b'), 0o700);
  }],
  ['a removed file', async (up) => {
    await fs.rm(path.join(up, 'cat/pkg/files/fix.patch'));
  }],
  ['a file replaced by a directory', async (up) => {
    await fs.rm(path.join(up, 'cat/other/other-1.ebuild'));
    await fs.mkdir(path.join(up, 'cat/other/other-1.ebuild'));
  }],
  ['a symlink with a new target of the same length', async (up, snap) => {
    await fs.rm(path.join(up, 'link'));
    await fs.symlink('cat/pkX', path.join(up, 'link'));
    await sameTimes(path.join(up, 'link'), path.join(snap, 'link'));
  }],
  ['a file renamed in its directory', async (up) => {
    await fs.rename(path.join(up, 'cat/other/other-1.ebuild'), path.join(up, 'cat/other/other-2.ebuild'));
  }],
];
if (isRoot) {
  changes.push(['a file with a new owner', async (up) => {
    await fs.chown(path.join(up, 'cat/pkg/pkg-1.ebuild'), 65534, 65534);
  }]);
}

for (const type of ['local', 'rsync'] as const) {
  describe(`${type} source: no-op syncs are found before cloning`, () => {
    it('a no-op sync clones nothing and says so; the snapshot is left as it was', async () => {
      const { dir, repo } = await setup(type);
      const snap = path.join(dir, 'store', 'snapshots', '1');
      const before = await readTree(snap);
      const staging = (await repo.status()).staging;
      const r = await repo.sync();
      expect(r.outcome).toBe('up-to-date');
      expect(r.unchangedBeforeClone).toBe(true);
      // Nothing cloned, nothing taken: the prepared clone (if any) is still there, as it was.
      expect((await repo.status()).staging).toEqual(staging);
      expect(await readTree(snap)).toEqual(before);
    });

    it("a directory whose time alone changed is no change (as for the fill)", async () => {
      const { up, repo } = await setup(type);
      await fs.utimes(path.join(up, 'deep/a'), new Date(2000, 0, 1), new Date(2000, 0, 1));
      expect((await repo.sync()).outcome).toBe('up-to-date');
    });

    for (const [what, change] of changes) {
      it(`finds ${what}`, async () => {
        const { dir, up, repo } = await setup(type);
        await change(up, path.join(dir, 'store', 'snapshots', '1'));
        const r = await repo.sync();
        expect(r.unchangedBeforeClone).toBe(false);
        expect(r.outcome).toBe('updated');
        expect(await readTree(await repo.currentPath())).toEqual(await readTree(up));
      });
    }

    it('with prepared staging, a no-op sync leaves the prepared clone for the next sync', async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      await writeTree(up, { 'a/b': 'one\n' });
      const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-prepare-staging = yes', type, up), path.join(dir, 'repos.conf')).get('test');
      await repo.sync();
      const prepared = (await repo.status()).staging;
      expect(prepared).toEqual([expect.objectContaining({ base: 1 })]);
      const r = await repo.sync();
      expect(r.unchangedBeforeClone).toBe(true);
      expect((await repo.status()).staging).toEqual(prepared);
      await fs.writeFile(path.join(up, 'a/b'), 'two, longer\n');
      const r2 = await repo.sync();
      expect(r2.outcome).toBe('updated');
      expect(r2).toMatchObject({ prepared: true, resumed: false }); // the prepared clone was used, nothing was interrupted
    });
  });
}

describe('treesDiffer', () => {
  it('is false for a copy with the same times and true once anything differs', async () => {
    const dir = tmpdir();
    const a = path.join(dir, 'a');
    await writeTree(a, { 'x/y/z': 'z\n', 'x/l': { symlink: 'y' }, 'w': 'w\n' });
    execFileSync('cp', ['-a', a, path.join(dir, 'b')]);
    const b = path.join(dir, 'b');
    expect(await treesDiffer(a, b)).toBe(false);
    await fs.writeFile(path.join(b, 'extra'), '');
    expect(await treesDiffer(a, b)).toBe(true);
  });

  it('counts what it cannot read, and special files, as differences', async () => {
    const dir = tmpdir();
    const a = path.join(dir, 'a');
    await writeTree(a, { 'x/y': 'y\n' });
    expect(await treesDiffer(a, path.join(dir, 'missing'))).toBe(true);
    execFileSync('cp', ['-a', a, path.join(dir, 'b')]);
    execFileSync('mkfifo', [path.join(a, 'x', 'fifo')]);
    execFileSync('mkfifo', [path.join(dir, 'b', 'x', 'fifo')]);
    expect(await treesDiffer(a, path.join(dir, 'b'))).toBe(true);
  });
});
