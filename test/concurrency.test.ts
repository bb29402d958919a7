/**
 * Concurrent updates with real processes: several syncs of one repo never
 * interfere, --no-wait reports who holds the repo with exit 75, different
 * repos do not wait for each other, and readers never see a torn tree.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { rcuConf, runCli, sleep, startCli, tmpdir, wholeVersion, writeConf, writeVersionedTree } from './helpers.js';

const N = 600;

describe('concurrent syncs', () => {
  it('several syncs of one repo at once: one commits, the others wait and find nothing to do', async () => {
    const dir = tmpdir();
    await writeVersionedTree(path.join(dir, 'upstream'), N, 'v1');
    const conf = await writeConf(dir, rcuConf(dir));
    const results = await Promise.all(Array.from({ length: 5 }, () => runCli(['-c', conf, 'sync'])));
    for (const r of results) {
      // Nothing but, for those that had to wait, the line saying so: for the
      // sync, or for the clone it prepares for the next one after its commit;
      // or, where the holder had the lock but had not yet said who it is
      // (or had just let go), for another process.
      expect(r.stderr).toMatch(/^(reposnap: waiting for (the update of test by pid \d+ \((sync|prepare), since \S+\)|another process updating test)\n)?$/);
      expect(r.code).toBe(0);
    }
    expect(results.filter((r) => r.stderr !== '').length).toBeGreaterThan(0);
    const outs = results.map((r) => r.stdout.trim());
    expect(outs.filter((o) => o === 'test: up to date (snapshot 1)')).toHaveLength(4);
    expect(outs.filter((o) => o.startsWith('test: updated to snapshot 1 '))).toHaveLength(1);
    expect(await fs.readdir(path.join(dir, 'store', 'snapshots'))).toEqual(['1']);
    expect(await wholeVersion(path.join(dir, 'repo'), N)).toBe('v1');
    // No leftovers. A clone prepared for the next sync is not one: the sync
    // that committed makes it when it finds the repo free, which it may be
    // for a moment if a waiting sync has not joined the kernel's queue yet.
    const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: { repos: Array<{ staging: Array<{ base: number; locked: boolean; prepared: boolean }> }> } }).results;
    expect(st.repos[0]?.staging.filter((x) => !(x.prepared && !x.locked && x.base === 1))).toEqual([]);
    expect(st.repos[0]?.staging.length).toBeLessThanOrEqual(1);
  });

  it('--no-wait exits 75 naming the holder; a waiting sync proceeds once the holder is done', async () => {
    const dir = tmpdir();
    await writeVersionedTree(path.join(dir, 'upstream'), 10, 'v1');
    const conf = await writeConf(dir, rcuConf(dir));
    const repo = Repos.load({ path: conf }).get('test');
    const update = await repo.storage.initUpdate(); // holds the repo in this process

    const busy = await runCli(['-c', conf, 'sync', '--no-wait']);
    expect(busy.code).toBe(75);
    expect(busy.stderr).toMatch(new RegExp(`^reposnap: repo test is busy: pid ${process.pid} holds it \\(sync since \\d{4}-`));

    const json = await runCli(['-c', conf, 'sync', '--no-wait', '--json']);
    expect(json.code).toBe(75);
    expect((JSON.parse(json.stdout) as { results: Array<{ error: { code: string } }> }).results[0]?.error.code).toBe('EBUSY');

    const st = await runCli(['-c', conf, 'status', '--json']);
    expect((JSON.parse(st.stdout) as { results: { repos: Array<{ busy: { pid: number } }> } }).results.repos[0]?.busy.pid).toBe(process.pid);

    const waiting = startCli(['-c', conf, 'sync']);
    await sleep(500);
    expect(waiting.child.exitCode).toBeNull(); // still waiting for us
    await repo.storage.abortUpdate(update);
    const r = await waiting.done;
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/updated to snapshot 1/);
  });

  it('different repos sync in parallel: a held repo does not block another', async () => {
    const dir = tmpdir();
    await writeVersionedTree(path.join(dir, 'upstream'), 10, 'v1');
    const conf = await writeConf(
      dir,
      `${rcuConf(dir)}
[other]
location = ${dir}/other
sync-type = local
sync-uri = ${dir}/upstream
sync-rcu = yes
sync-rcu-store-dir = ${dir}/other-store
`,
    );
    const repos = Repos.load({ path: conf });
    const update = await repos.get('test').storage.initUpdate();
    try {
      const r = await runCli(['-c', conf, 'sync', 'other']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/other: updated to snapshot 1/);
      // Syncing both: "other" succeeds, "test" is busy -> 75 overall.
      const both = await runCli(['-c', conf, 'sync', '--no-wait']);
      expect(both.code).toBe(75);
      expect(both.stdout).toMatch(/other: up to date/);
    } finally {
      await repos.get('test').storage.abortUpdate(update);
    }
  });

  it('readers resolving the location while syncs commit never see two versions or a vanishing file', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, N, 'v0');
    // Without leases (a later feature), spare snapshots are what protect a
    // reader that resolved an older snapshot; keep enough of them.
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 4\nsync-rcu-ttl-days = 0'));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    let stop = false;
    let reads = 0;
    const errors: string[] = [];
    const reader = (async () => {
      while (!stop) {
        try {
          const snap = await fs.realpath(path.join(dir, 'repo'));
          await wholeVersion(snap, N);
          reads++;
        } catch (err) {
          errors.push(String(err));
        }
      }
    })();
    for (let v = 1; v <= 6; v++) {
      await writeVersionedTree(up, N, `v${v}`);
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(0);
    }
    stop = true;
    await reader;
    expect(errors).toEqual([]);
    expect(reads).toBeGreaterThan(3);
    expect(await wholeVersion(path.join(dir, 'repo'), N)).toBe('v6');
  });
});
