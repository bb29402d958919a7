/**
 * Reading a tree's inodes ahead of rsync's dry run on a cold cache
 * (tree/read-ahead.ts): real `find` processes walk the whole tree, odd
 * names included; they are gone when stop() returns, and when a sync that
 * started them ends (published, failed or aborted); a sync with them
 * publishes exactly upstream. A cold cache is told from a warm one by
 * really dropping the kernel's caches (as root).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortedError } from '../src/errors.js';
import { Repos } from '../src/repos.js';
import { looksCold, readAhead } from '../src/tree/read-ahead.js';
import { descendants, isRoot, rcuConf, readTree, running, tmpdir, until, writeConf, writeTree } from './helpers.js';

const realFind = execFileSync('sh', ['-c', 'command -v find'], { encoding: 'utf8' }).trim();

/**
 * A `find` on PATH that notes its pid, waits as many seconds as `delay()`
 * last said (so that a test can catch it running), then is the real find.
 */
async function loggingFind(dir: string): Promise<{ bin: string; pids: () => number[]; delay: (seconds: number) => Promise<void> }> {
  const bin = path.join(dir, 'bin');
  const log = path.join(dir, 'find.log');
  const wait = path.join(dir, 'find.delay');
  await fs.mkdir(bin, { recursive: true });
  await fs.writeFile(wait, '0\n');
  // The wait does not hold find's output open: a stopped walker's pipes close with it.
  await fs.writeFile(path.join(bin, 'find'), `#!/bin/sh\necho $$ >> '${log}'\nsleep "$(cat '${wait}')" </dev/null >/dev/null 2>&1\nexec '${realFind}' "$@"\n`, { mode: 0o755 });
  const pids = (): number[] => {
    try {
      return readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  return { bin, pids, delay: (seconds) => fs.writeFile(wait, `${seconds}\n`) };
}

/** A tree of nested folders, some with names find's output and arguments must survive. */
async function foldersTree(root: string): Promise<number> {
  const spec: Record<string, string> = {};
  for (let c = 0; c < 6; c++) for (let p = 0; p < 5; p++) spec[`cat-${c}/pkg-${p}/files/patch`] = 'x\n';
  spec['odd/with space/-dash/(paren)/file'] = 'y\n';
  spec['odd/new\nline/file'] = 'z\n';
  await writeTree(root, spec);
  // Folders: the top, 6 categories x (1 + 5 packages x 2), and odd's 5.
  return 1 + 6 * 11 + 5;
}

/** A read-ahead (always) of a fresh tree whose walkers each wait 30 s before they are the real find. */
async function slowReadAhead(): Promise<{ ahead: ReturnType<typeof readAhead>; find: Awaited<ReturnType<typeof loggingFind>> }> {
  const dir = tmpdir('read-ahead-stop');
  const root = path.join(dir, 'tree');
  await foldersTree(root);
  const find = await loggingFind(dir);
  await find.delay(30);
  return { ahead: readAhead(root, { mode: 'always', find: path.join(find.bin, 'find') }), find };
}

describe('read-ahead', () => {
  it('walks every folder of the tree, odd names included, and leaves no walker', async () => {
    const root = path.join(tmpdir('read-ahead'), 'tree');
    const folders = await foldersTree(root);
    const ahead = readAhead(root, { mode: 'always', lanes: 3 });
    await ahead.done;
    expect(ahead.started).toBe(true);
    expect(ahead.folders).toBe(folders);
    expect(descendants(process.pid).filter((p) => p.comm === 'find' && p.state !== 'Z')).toEqual([]);
  });

  it('never: starts nothing; a warm tree, or one that is not there: nothing either', async () => {
    const root = path.join(tmpdir('read-ahead'), 'tree');
    await foldersTree(root);
    for (const ahead of [readAhead(root, { mode: 'never' }), readAhead(root, { mode: 'auto' }), readAhead(path.join(root, 'not-there'), { mode: 'always' })]) {
      await ahead.done;
      expect(ahead.started).toBe(false);
      expect(ahead.folders).toBe(0);
    }
  });

  it.skipIf(!isRoot)('a folder on another filesystem (a mount inside the tree) is not walked (as root)', async () => {
    const root = path.join(tmpdir('read-ahead'), 'tree');
    const folders = await foldersTree(root);
    const mnt = path.join(root, 'odd', 'mnt');
    await fs.mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    try {
      for (let i = 0; i < 5; i++) await fs.mkdir(path.join(mnt, `d${i}`, 'e'), { recursive: true });
      const ahead = readAhead(root, { mode: 'always' });
      await ahead.done;
      expect(ahead.folders).toBe(folders);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });

  it('stop() before the walkers start: none ever runs', async () => {
    const { ahead, find } = await slowReadAhead();
    const t0 = performance.now();
    await ahead.stop();
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(ahead.started).toBe(false);
    expect(find.pids()).toEqual([]);
  });

  it('stop() ends the walkers and returns once they are gone', async () => {
    const { ahead, find } = await slowReadAhead();
    await until('a walker', () => (find.pids().length > 0 ? true : undefined));
    const t0 = performance.now();
    await ahead.stop();
    expect(performance.now() - t0).toBeLessThan(2000);
    await ahead.done;
    for (const pid of find.pids()) expect(running(pid)).toBe(false);
  });

  it.skipIf(!isRoot)('tells a warm cache from a cold one (dropping the caches, as root)', async () => {
    const root = path.join(tmpdir('read-ahead-cold'), 'tree');
    const spec: Record<string, string> = {};
    // Files right under the top folders: the probe stats them, and only the
    // walkers' stat of every entry (not their listing of folders) reads
    // their inodes back in.
    for (let c = 0; c < 8; c++) for (let p = 0; p < 400; p++) spec[`cat-${c}/pkg-${p}.ebuild`] = 'x\n';
    await writeTree(root, spec);
    expect(looksCold(root)).toBe(false);
    execFileSync('sync');
    await fs.writeFile('/proc/sys/vm/drop_caches', '3\n');
    expect(looksCold(root)).toBe(true);
    // Dropped again (the probe itself read some back in), then read back in by the walkers: warm again.
    await fs.writeFile('/proc/sys/vm/drop_caches', '3\n');
    await readAhead(root, { mode: 'always' }).done;
    expect(looksCold(root)).toBe(false);
  });
  if (!isRoot) console.log('read-ahead: cold-cache probe test skipped: dropping the caches needs root');
});

describe('read-ahead in an rsync sync', () => {
  const saved = { path: process.env.PATH, mode: process.env.REPOSNAP_READ_AHEAD };
  let dir: string;
  let find: Awaited<ReturnType<typeof loggingFind>>;
  beforeAll(async () => {
    dir = tmpdir('read-ahead-sync');
    find = await loggingFind(dir);
    process.env.PATH = `${find.bin}:${process.env.PATH ?? ''}`;
    process.env.REPOSNAP_READ_AHEAD = 'always';
  });
  afterAll(() => {
    process.env.PATH = saved.path;
    if (saved.mode === undefined) delete process.env.REPOSNAP_READ_AHEAD;
    else process.env.REPOSNAP_READ_AHEAD = saved.mode;
  });
  const noWalkerLeft = (): void => {
    for (const pid of find.pids()) expect(running(pid)).toBe(false);
  };

  it('publishes exactly upstream, leaves no walker after a sync, a failed one or an aborted one, and the next sync is exact', { timeout: 120_000 }, async () => {
    const up = path.join(dir, 'upstream');
    await foldersTree(up);
    const repo = Repos.load({ path: await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 3\nsync-rcu-ttl-days = 0', 'rsync', up)) }).get('test');
    await repo.sync();
    const current = (): string => path.join(dir, 'store', 'latest');

    // A change: the dry run against the current snapshot has walkers beside it.
    await fs.writeFile(path.join(up, 'cat-1/pkg-2/files/patch'), 'changed\n');
    await fs.rm(path.join(up, 'cat-3'), { recursive: true });
    expect((await repo.sync()).snapshot?.id).toBe(2);
    expect(find.pids().length).toBeGreaterThan(0);
    noWalkerLeft();
    expect(await readTree(current())).toEqual(await readTree(up));

    // From here on each walker waits two seconds before it is the real
    // find: still there when the plan fails or the sync is aborted.
    await find.delay(2);
    // The sync fails (upstream holds a FIFO, which the fill refuses): the walkers go with its plan.
    const walkers = find.pids().length;
    execFileSync('mkfifo', [path.join(up, 'cat-0/fifo')]);
    await expect(repo.sync()).rejects.toThrow(/refusing special file/);
    expect(find.pids().length).toBeGreaterThan(walkers);
    noWalkerLeft();
    await fs.rm(path.join(up, 'cat-0/fifo'));

    // Aborted while walkers run.
    await fs.writeFile(path.join(up, 'cat-0/pkg-0/files/patch'), 'changed again\n');
    const before = find.pids().length;
    const ac = new AbortController();
    const syncing = repo.sync({ signal: ac.signal }).catch((e: unknown) => e);
    await until('a walker', () => (find.pids().length > before ? true : undefined));
    ac.abort();
    expect(await syncing).toBeInstanceOf(AbortedError);
    noWalkerLeft();
    expect(await readTree(current())).not.toEqual(await readTree(up));

    // And the next sync is exact.
    await find.delay(0);
    await repo.sync();
    noWalkerLeft();
    expect(await readTree(current())).toEqual(await readTree(up));
  });
});
