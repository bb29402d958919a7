/**
 * Modification stamps and stamped caches: every rule of src/stamp, with real
 * processes for the crash case.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StampedCache, stampGeneration } from '../src/stamp/cache.js';
import { snapshotGeneration } from '../src/store/generation.js';
import { Modification, modify, readStamp, STAMP_FILE } from '../src/stamp/stamp.js';
import { rcuConf, runCli, sleep, startCli, tmpdir, writeConf, writeTree } from './helpers.js';

describe('modification stamps', () => {
  it('change their stat signature on every write, even twice within one millisecond', async () => {
    const root = tmpdir();
    const sigs = new Set<string>();
    sigs.add((await readStamp(root)).signature);
    const t0 = performance.now();
    await modify(root, () => Promise.resolve());
    await modify(root, () => Promise.resolve());
    const elapsed = performance.now() - t0;
    // Four stamp writes (before and after, twice), each a new signature.
    const m = await Modification.begin(root);
    sigs.add((await readStamp(root)).signature);
    await m.end();
    sigs.add((await readStamp(root)).signature);
    expect(sigs.size).toBe(3);
    const s = await readStamp(root);
    expect(s.counter).toBe(6);
    expect(s.inProgress).toBe(false);
    expect(s.pid).toBe(process.pid);
    expect(elapsed).toBeGreaterThan(0);

    // Two back-to-back writes that land in the same millisecond still differ
    // (a new inode each time), which an mtime comparison would miss.
    const a = await Modification.begin(root);
    const s1 = (await readStamp(root)).signature;
    await a.end();
    const s2 = (await readStamp(root)).signature;
    expect(s1).not.toBe(s2);
    expect(s1.split(':')[1]).not.toBe(s2.split(':')[1]);
  });

  it('say "in progress" while modifying, stamp "done" also when the work throws, and bump the root mtime', async () => {
    const root = tmpdir();
    const old = new Date('2001-01-01T00:00:00Z');
    await fs.utimes(root, old, old);
    let during: boolean | undefined;
    await expect(
      modify(root, async () => {
        during = (await readStamp(root)).inProgress;
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(during).toBe(true);
    expect((await readStamp(root)).inProgress).toBe(false);
    expect((await fs.stat(root)).mtime.getTime()).toBeGreaterThan(old.getTime());
  });

  it('detect a modifier killed between before and after; the next modification clears it', async () => {
    const root = tmpdir();
    const run = startCli(['stamp', 'run', root, '--', 'sh', '-c', 'exec sleep 30 >/dev/null 2>&1']);
    for (let i = 0; i < 100 && !(await readStamp(root)).inProgress; i++) await sleep(20);
    const live = await readStamp(root);
    expect(live.inProgress).toBe(true);
    expect(live.writerDead).toBe(false);
    run.child.kill('SIGKILL');
    await run.done;
    const dead = await readStamp(root);
    expect(dead.inProgress).toBe(true);
    expect(dead.writerDead).toBe(true);
    const shown = await runCli(['stamp', 'show', root]);
    expect(shown.stdout).toMatch(/modification by pid \d+ in progress, but that writer died/);

    expect((await runCli(['stamp', 'touch', root])).code).toBe(0);
    const after = await readStamp(root);
    expect(after.inProgress).toBe(false);
    expect(after.counter).toBe(dead.counter + 2);
  });

  it('stamp run wraps a command: before and after, its exit status, JSON shape of show', async () => {
    const root = tmpdir();
    const r = await runCli(['stamp', 'run', root, '--', 'sh', '-c', `test "$(cat ${root}/${STAMP_FILE} | grep -c '"inProgress":true')" = 1 && exit 4`]);
    expect(r.code).toBe(4);
    const j = (JSON.parse((await runCli(['stamp', 'show', root, '--json'])).stdout) as { results: Record<string, unknown> }).results;
    expect(j).toMatchObject({ counter: 2, inProgress: false, pid: expect.any(Number), time: expect.stringMatching(/^\d{4}-/) });
    expect((await runCli(['stamp', 'show', path.join(root, 'nope'), '--json'])).code).toBe(0);
    expect((await runCli(['stamp', 'touch', path.join(root, 'nope')])).code).toBe(2);
  });
});

describe('StampedCache', () => {
  it('returns the cached value after one stat while nothing changed; recomputes after a modification', async () => {
    const root = tmpdir();
    let computes = 0;
    const cache = new StampedCache(stampGeneration(root), async () => {
      computes++;
      return (await fs.readdir(root)).filter((n) => !n.startsWith('.')).length;
    });
    expect(await cache.get()).toEqual({ value: 0, hit: false, stored: true });
    expect(await cache.get()).toEqual({ value: 0, hit: true, stored: false });
    await modify(root, () => fs.writeFile(path.join(root, 'pkg'), 'x'));
    expect(await cache.get()).toEqual({ value: 1, hit: false, stored: true });
    expect(await cache.get()).toMatchObject({ value: 1, hit: true });
    expect(computes).toBe(2);
  });

  it('never stores a value computed during a modification, or one whose stamp changed meanwhile', async () => {
    const root = tmpdir();
    const file = path.join(tmpdir(), 'cache.json');
    const m = await Modification.begin(root);
    const cache = new StampedCache(stampGeneration(root), () => Promise.resolve('half-done'), file);
    expect(await cache.get()).toEqual({ value: 'half-done', hit: false, stored: false });
    expect(await cache.get()).toMatchObject({ hit: false, stored: false });
    await m.end();
    await expect(fs.stat(file)).rejects.toThrow();

    let n = 0;
    const racing = new StampedCache(stampGeneration(root), async () => {
      n++;
      if (n === 1) await modify(root, () => Promise.resolve()); // changes under our feet
      return `v${n}`;
    }, file);
    expect(await racing.get()).toEqual({ value: 'v1', hit: false, stored: false });
    expect(await racing.get()).toEqual({ value: 'v2', hit: false, stored: true });
    // Persisted: a new cache object (another process) gets the hit.
    const again = new StampedCache(stampGeneration(root), () => Promise.resolve('never'), file);
    expect(await again.get()).toEqual({ value: 'v2', hit: true, stored: false });
  });

  it('a crashed modifier leaves the cache untrusted until the next modification', async () => {
    const root = tmpdir();
    const run = startCli(['stamp', 'run', root, '--', 'sh', '-c', 'exec sleep 30 >/dev/null 2>&1']);
    for (let i = 0; i < 100 && !(await readStamp(root)).inProgress; i++) await sleep(20);
    run.child.kill('SIGKILL');
    await run.done;
    const cache = new StampedCache(stampGeneration(root), () => Promise.resolve(1));
    expect((await cache.get()).stored).toBe(false);
    await modify(root, () => Promise.resolve());
    expect((await cache.get()).stored).toBe(true);
  });

  it('works on an RCU repository with the snapshot id as the generation', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: '1\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    const repo = Repos.load({ path: conf }).get('test');
    await repo.sync();
    let computes = 0;
    const cache = repo.cache(async () => {
      computes++;
      return fs.readFile(path.join(await repo.currentPath(), 'f'), 'utf8');
    });
    expect(await cache.get()).toMatchObject({ value: '1\n', stored: true });
    expect(await cache.get()).toMatchObject({ value: '1\n', hit: true });
    await fs.writeFile(path.join(dir, 'upstream', 'f'), '2\n');
    await repo.sync();
    expect(await cache.get()).toMatchObject({ value: '2\n', stored: true });
    expect(computes).toBe(2);
    expect(await snapshotGeneration(path.join(dir, 'store')).key()).toBe('snapshot:2');
  });
});

describe('syncs in place stamp their location', () => {
  for (const mode of ['in-place', 'quarantine']) {
    it(`${mode}: each sync is a modification; status shows the generation`, async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      await writeTree(up, { f: '1\n' });
      const conf = await writeConf(dir, `[test]\nlocation = ${dir}/repo\nsync-type = rsync\nsync-uri = ${up}\n${mode === 'in-place' ? 'sync-allow-hardlinks = no' : ''}\n`);
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
      const s1 = await readStamp(path.join(dir, 'repo'));
      expect(s1.counter).toBe(2);
      expect(s1.inProgress).toBe(false);
      await fs.writeFile(path.join(up, 'f'), '22\n');
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
      expect((await readStamp(path.join(dir, 'repo'))).counter).toBe(4);
      // The stamp survives rsync --delete and is not content.
      expect(await fs.readFile(path.join(dir, 'repo', 'f'), 'utf8')).toBe('22\n');
      const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: { repos: Array<{ generation: unknown }> } }).results;
      expect(st.repos[0]?.generation).toEqual({ kind: 'stamp', value: 4, inProgress: false });
      expect((await runCli(['-c', conf, 'status'])).stdout).toMatch(/generation stamp 4/);
    });
  }
});
