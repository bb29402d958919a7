/**
 * The RCU store driven through the library with the local source: layout,
 * immutability of published snapshots, change detection, collection policy,
 * metadata, and taking over a store another tool made.
 */
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { readMeta } from '../src/store/metadata.js';
import { rcuConf, readTree, tmpdir, writeTree } from './helpers.js';

async function setup(extra = 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0') {
  const dir = tmpdir();
  const up = path.join(dir, 'upstream');
  await writeTree(up, {
    'metadata/timestamp.chk': 'T1\n',
    'app-misc/hello/hello-1.ebuild': 'EAPI=8\n',
    'app-misc/hello/files/fix.patch': 'patch\n',
    'eclass/e.eclass': 'eclass\n',
    'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
    'link-in': { symlink: 'app-misc/hello' },
    'link-out': { symlink: '../../../etc/passwd' },
    'link-abs': { symlink: '/etc/passwd' },
    'empty-dir': { dir: true, mode: 0o750 },
  });
  const repos = Repos.fromText(rcuConf(dir, extra), path.join(dir, 'repos.conf'));
  const repo = repos.get('test');
  const layout = new StoreLayout(path.join(dir, 'store'), path.join(dir, 'repo'));
  return { dir, up, repo, layout };
}

describe('RCU store with the local source', () => {
  it('publishes a first snapshot with Portage-compatible layout', async () => {
    const { dir, up, repo, layout } = await setup();
    const r = await repo.sync();
    expect(r.outcome).toBe('updated');
    expect(r.snapshot?.id).toBe(1);
    expect(await fs.readlink(path.join(dir, 'repo'))).toBe(path.join(dir, 'store', 'latest'));
    expect(await fs.readlink(layout.latest)).toBe('snapshots/1');
    expect(await fs.readdir(layout.snapshotsDir)).toEqual(['1']);
    expect(await fs.realpath(path.join(dir, 'repo'))).toBe(layout.snapshot(1));
    expect(await repo.currentPath()).toBe(layout.snapshot(1));
    // Content, modes and symlinks (kept as written, never followed) are exact.
    expect(await readTree(path.join(dir, 'repo') + '/')).toEqual(await readTree(up));
    expect((await fs.lstat(path.join(layout.snapshot(1), 'link-out'))).isSymbolicLink()).toBe(true);
    // Metadata lives outside snapshots/.
    const meta = await readMeta(layout, 1);
    expect(meta?.source).toEqual({ type: 'local', uri: up });
    expect(meta?.files).toBe(8);
    expect(meta?.bytes).toBeGreaterThan(0);
    expect(Date.now() - new Date(meta?.committedAt ?? 0).getTime()).toBeLessThan(60_000);
  });

  it('makes no snapshot when nothing changed', async () => {
    const { repo, layout } = await setup('sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0\nsync-rcu-prepare-staging = no');
    await repo.sync();
    const r = await repo.sync();
    expect(r.outcome).toBe('up-to-date');
    // The local tree is compared with the current snapshot before anything is cloned.
    expect(r.unchangedBeforeClone).toBe(true);
    expect(r.snapshot?.id).toBe(1);
    expect(await fs.readdir(layout.snapshotsDir)).toEqual(['1']);
    expect(await fs.readdir(layout.stagingDir).catch(() => [])).toEqual([]);
  });

  it('never writes a published file in place: changes get new inodes, old snapshots keep their content', async () => {
    const { up, repo, layout } = await setup('sync-rcu-spare-snapshots = 5');
    await repo.sync();
    const s1 = layout.snapshot(1);
    const before = await readTree(s1);
    const inoUnchanged = (await fs.stat(path.join(s1, 'eclass/e.eclass'))).ino;
    const inoChanged = (await fs.stat(path.join(s1, 'metadata/timestamp.chk'))).ino;

    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
    await fs.rm(path.join(up, 'app-misc/hello/files'), { recursive: true });
    await writeTree(up, { 'dev-libs/new/new-1.ebuild': 'new\n' });
    await fs.chmod(path.join(up, 'scripts/run.sh'), 0o700);
    const r = await repo.sync();
    expect(r.outcome).toBe('updated');
    expect(r.snapshot?.id).toBe(2);
    expect(r.changes.deleted).toBeGreaterThanOrEqual(1);
    expect(r.changes.added).toBeGreaterThanOrEqual(2);

    const s2 = layout.snapshot(2);
    expect(await readTree(s2)).toEqual(await readTree(up));
    expect(await readTree(s1)).toEqual(before); // snapshot 1 untouched, modes included
    expect((await fs.stat(path.join(s2, 'eclass/e.eclass'))).ino).toBe(inoUnchanged); // shared
    expect((await fs.stat(path.join(s2, 'metadata/timestamp.chk'))).ino).not.toBe(inoChanged);
    expect((await fs.stat(path.join(s1, 'scripts/run.sh'))).mode & 0o777).toBe(0o755);
    expect((await readMeta(layout, 2))?.base).toBe(1);
  });

  it('preserves file and directory mtimes', async () => {
    const { up, repo, layout } = await setup();
    const old = new Date('2001-02-03T04:05:06Z');
    await fs.utimes(path.join(up, 'eclass/e.eclass'), old, old);
    await fs.utimes(path.join(up, 'eclass'), old, old);
    await repo.sync();
    expect((await fs.stat(path.join(layout.snapshot(1), 'eclass/e.eclass'))).mtime.getTime()).toBe(old.getTime());
    expect((await fs.stat(path.join(layout.snapshot(1), 'eclass'))).mtime.getTime()).toBe(old.getTime());
  });

  it('collects by spare count and TTL, never the latest', async () => {
    const { up, repo, layout } = await setup('sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0');
    for (let i = 1; i <= 4; i++) {
      await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), `T${i}\n`);
      await repo.sync();
    }
    // latest (4) and one spare (3) remain.
    expect((await fs.readdir(layout.snapshotsDir)).sort()).toEqual(['3', '4']);
    expect(await fs.readdir(layout.metaDir).then((n) => n.sort())).toEqual(['3.json', '4.json']);

    const st = await repo.status();
    expect(st.snapshots.map((s) => [s.id, s.keepReasons])).toEqual([
      [3, ['spare']],
      [4, ['latest']],
    ]);
  });

  it('collection removes temporaries whose writer died, and only those', async () => {
    const { repo, layout } = await setup();
    await repo.sync();
    // A pid that existed and is gone: a child that has exited.
    const dead = await new Promise<number>((resolve) => {
      const c = spawn('true');
      c.on('close', () => resolve(c.pid as number));
    });
    const deadTmp = path.join(layout.ownDir, `.last-id.reposnap-tmp-${dead}-0123abcd`);
    const liveTmp = path.join(layout.ownDir, `.last-id.reposnap-tmp-${process.pid}-0123abcd`);
    const deadLink = path.join(layout.storeDir, `.latest.reposnap-new-${dead}-89abcdef`);
    for (const f of [deadTmp, liveTmp]) await fs.writeFile(f, '1\n');
    await fs.symlink('snapshots/1', deadLink);
    await repo.gc();
    expect(await fs.readdir(layout.ownDir)).toContain(path.basename(liveTmp));
    expect(await fs.readdir(layout.ownDir)).not.toContain(path.basename(deadTmp));
    expect(await fs.readdir(layout.storeDir)).not.toContain(path.basename(deadLink));
  });

  it('makes the new snapshot visible before collection starts, and times both', async () => {
    const { up, repo, layout } = await setup('sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0');
    await repo.sync();
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
    let latestAtGc: string | undefined;
    const r = await repo.sync({
      onProgress: (e) => {
        if (e.phase === 'gc') latestAtGc = readlinkSync(layout.latest);
      },
    });
    expect(latestAtGc).toBe('snapshots/2');
    expect(r.collected).toEqual([1]);
    expect(r.timings.gcMs).toBeGreaterThan(0);
    expect(r.timings.commitMs).toBeGreaterThan(0);
  });

  it('keeps snapshots younger than the TTL, measured from the recorded commit time', async () => {
    const { up, repo, layout } = await setup('sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 7');
    for (let i = 1; i <= 3; i++) {
      await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), `T${i}\n`);
      await repo.sync();
    }
    // rsync -a style: an ancient directory mtime must not make snapshots old.
    const ancient = new Date('2000-01-01T00:00:00Z');
    for (const id of [1, 2, 3]) await fs.utimes(layout.snapshot(id), ancient, ancient);
    await repo.storage.garbageCollection();
    expect((await fs.readdir(layout.snapshotsDir)).sort()).toEqual(['1', '2', '3']);

    // Age snapshot 1's commit record past the TTL: it goes, 2 stays (young).
    const meta = JSON.parse(await fs.readFile(layout.meta(1), 'utf8')) as { committedAt: string };
    meta.committedAt = new Date(Date.now() - 8 * 86400_000).toISOString();
    await fs.writeFile(layout.meta(1), JSON.stringify(meta));
    const gc = await repo.storage.garbageCollection();
    expect(gc?.removed).toEqual([1]);
    expect((await fs.readdir(layout.snapshotsDir)).sort()).toEqual(['2', '3']);
    expect(await fs.readdir(layout.trashDir)).toEqual([]);
  });

  it('takes over a store made by another tool: ids continue after the highest', async () => {
    const { dir, up, repo, layout } = await setup('sync-rcu-spare-snapshots = 9');
    // A store as Portage leaves it: snapshots/N, latest, location symlink,
    // and its own update/ directory; no reposnap/ directory.
    await fs.mkdir(path.join(layout.snapshotsDir, '7'), { recursive: true });
    await fs.writeFile(path.join(layout.snapshotsDir, '7', 'old'), 'old\n');
    await fs.mkdir(path.join(layout.snapshotsDir, '12'), { recursive: true });
    await fs.writeFile(path.join(layout.snapshotsDir, '12', 'old'), 'old12\n');
    await fs.symlink('snapshots/12', layout.latest);
    await fs.mkdir(path.join(dir, 'store', 'update'));
    await fs.symlink(layout.latest, path.join(dir, 'repo'));

    const r = await repo.sync();
    expect(r.snapshot?.id).toBe(13);
    expect(await readTree(layout.snapshot(13))).toEqual(await readTree(up));
    expect(await fs.readFile(path.join(layout.snapshot(12), 'old'), 'utf8')).toBe('old12\n');
    // Only integers in snapshots/ (Portage parses every name there).
    for (const n of await fs.readdir(layout.snapshotsDir)) expect(n).toMatch(/^\d+$/);
    // Portage-made snapshots have no metadata: their age comes from ctime.
    const st = await repo.status();
    expect(st.snapshots.find((s) => s.id === 7)?.committedAt).not.toBeNull();
  });

  it('never reuses an id, even after the newest unpublished snapshot is collected', async () => {
    const { up, repo, layout } = await setup('sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0');
    await repo.sync();
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
    await repo.sync();
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T3\n');
    const r = await repo.sync();
    expect(r.snapshot?.id).toBe(3);
    expect(await fs.readFile(layout.lastIdFile, 'utf8')).toBe('3\n');
  });

  it('refuses device files, FIFOs and sockets in a local source, committing nothing', async () => {
    const { dir, up, repo, layout } = await setup();
    await repo.sync();
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [path.join(up, 'fifo')]);
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2\n');
    await expect(repo.sync()).rejects.toThrow(/refusing special file .*fifo/);
    expect(await fs.readlink(layout.latest)).toBe('snapshots/1');
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
  });

  it('fails clearly on a missing source and keeps the previous snapshot', async () => {
    const { dir, up, repo, layout } = await setup();
    await repo.sync();
    await fs.rename(up, `${up}.gone`);
    await expect(repo.sync()).rejects.toThrow(`repo test: source ${up} does not exist`);
    expect(await fs.readlink(layout.latest)).toBe('snapshots/1');
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
  });

  it('keeps names that are not UTF-8 and names with newlines exactly', async () => {
    const { up, repo, layout } = await setup();
    const odd = Buffer.concat([Buffer.from(`${up}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')]);
    await fs.writeFile(odd, 'odd\n');
    await fs.writeFile(path.join(up, 'new\nline'), 'nl\n');
    await repo.sync();
    const names = await fs.readdir(layout.snapshot(1), { encoding: 'buffer' });
    expect(names.some((n) => n.equals(Buffer.concat([Buffer.from('bad-'), Buffer.from([0xff, 0xfe]), Buffer.from('.txt')])))).toBe(true);
    expect(await fs.readFile(path.join(layout.snapshot(1), 'new\nline'), 'utf8')).toBe('nl\n');
    // And the next sync sees them as unchanged.
    expect((await repo.sync()).outcome).toBe('up-to-date');
  });

  it('replaces an empty directory where latest belongs (as Portage pre-sync may leave)', async () => {
    const { repo, layout } = await setup();
    await fs.mkdir(layout.latest, { recursive: true });
    await repo.sync();
    expect(await fs.readlink(layout.latest)).toBe('snapshots/1');
  });
});
