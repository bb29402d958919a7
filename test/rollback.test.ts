/**
 * `reposnap rollback`, `pin` and `unpin`: an older kept snapshot made current
 * atomically and shown by status until the next sync brings upstream back;
 * pinned snapshots outlive collection; clear errors (exit 2) for ids that
 * are not kept, 75 when an update holds the repo and --no-wait is given.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, runCli, sleep, startCli, tmpdir, writeConf, writeTree } from './helpers.js';

async function store(extra: string): Promise<{ dir: string; conf: string; version(v: string): Promise<void>; read(): Promise<string> }> {
  const dir = tmpdir();
  const up = path.join(dir, 'upstream');
  await writeTree(up, { 'metadata/timestamp.chk': 'v1\n' });
  const conf = await writeConf(dir, rcuConf(dir, extra));
  return {
    dir,
    conf,
    async version(v) {
      await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), `${v}\n`);
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code, r.stderr).toBe(0);
    },
    read: () => fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8'),
  };
}

interface Status {
  repos: Array<{ current: { id: number }; rolledBack: { from: number; to: number } | null; snapshots: Array<{ id: number; pinned: boolean; keepReasons: string[] }> }>;
}

async function status(conf: string): Promise<Status['repos'][0]> {
  return (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: Status }).results.repos[0] as Status['repos'][0];
}

describe('reposnap rollback', () => {
  it('makes the previous snapshot current, then any kept one; status says so; the next sync brings upstream back', async () => {
    const s = await store('sync-rcu-spare-snapshots = 5');
    for (const v of ['v1', 'v2', 'v3']) await s.version(v);
    expect(await s.read()).toBe('v3\n');

    const r = await runCli(['-c', s.conf, 'rollback', 'test']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rolled back from snapshot 3 to 2/);
    expect(await s.read()).toBe('v2\n');
    let st = await status(s.conf);
    expect(st.current.id).toBe(2);
    expect(st.rolledBack).toMatchObject({ from: 3, to: 2 });
    expect((await runCli(['-c', s.conf, 'status'])).stdout).toMatch(/rolled back from snapshot 3 to 2/);
    // Nothing is deleted: 3 is still kept.
    expect(st.snapshots.map((x) => x.id)).toEqual([1, 2, 3]);

    const json = (JSON.parse((await runCli(['-c', s.conf, 'rollback', 'test', '1', '--json'])).stdout) as { results: { from: number; to: number } }).results;
    expect([json.from, json.to]).toEqual([2, 1]);
    expect(await s.read()).toBe('v1\n');

    // Upstream is still v3: the next sync starts from 1 and publishes v3 as a new snapshot.
    const sync = await runCli(['-c', s.conf, 'sync', '--json']);
    expect(sync.code).toBe(0);
    expect(await s.read()).toBe('v3\n');
    st = await status(s.conf);
    expect(st.current.id).toBe(4);
    expect(st.rolledBack).toBeNull();
  });

  it('refuses what it cannot do: no older snapshot, an id not kept, the current one (exit 2); a busy repo with --no-wait (exit 75)', async () => {
    const s = await store('');
    await s.version('v1');
    expect(await runCli(['-c', s.conf, 'rollback', 'test'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/keeps no snapshot older than the current one \(1\)/) });
    expect(await runCli(['-c', s.conf, 'rollback', 'test', '9'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/has no snapshot 9 \(kept: 1\)/) });
    expect(await runCli(['-c', s.conf, 'rollback', 'test', '1'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/already the current one/) });
    expect(await s.read()).toBe('v1\n');

    await s.version('v2');
    await fs.writeFile(path.join(s.dir, 'upstream', 'metadata/timestamp.chk'), 'v3\n');
    const holder = startCli(['-c', s.conf, 'sync'], { env: { ...process.env, REPOSNAP_FAILPOINT: 'staged' } });
    let said = '';
    holder.child.stderr?.on('data', (d: Buffer) => (said += d.toString()));
    for (let i = 0; i < 200 && !said.includes('failpoint staged'); i++) await sleep(25);
    const busy = await runCli(['-c', s.conf, 'rollback', 'test', '--no-wait']);
    holder.child.kill('SIGTERM');
    await holder.done;
    expect(busy.code).toBe(75);
    expect(busy.stderr).toMatch(/repo test is busy: pid \d+ holds it \(sync since/);
    expect(await s.read()).toBe('v2\n');
  });
});

describe('reposnap pin and unpin', () => {
  it('a pinned snapshot outlives collection until unpinned', async () => {
    const s = await store('sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0');
    await s.version('v1');
    expect((await runCli(['-c', s.conf, 'pin', 'test', '1'])).stdout).toMatch(/snapshot 1 pinned/);
    expect((await runCli(['-c', s.conf, 'pin', 'test', '1'])).stdout).toMatch(/was pinned already/);
    await s.version('v2');
    await s.version('v3');
    let st = await status(s.conf);
    expect(st.snapshots.map((x) => x.id)).toEqual([1, 3]);
    expect(st.snapshots[0]).toMatchObject({ id: 1, pinned: true, keepReasons: ['pinned'] });
    expect((await runCli(['-c', s.conf, 'gc', '--dry-run'])).stdout).toMatch(/1.*kept: pinned/);

    // A pinned snapshot can be rolled back to.
    expect((await runCli(['-c', s.conf, 'rollback', 'test', '1'])).code).toBe(0);
    expect(await s.read()).toBe('v1\n');
    await s.version('v4');

    expect((await runCli(['-c', s.conf, 'unpin', 'test', '1'])).stdout).toMatch(/snapshot 1 unpinned/);
    expect((await runCli(['-c', s.conf, 'unpin', 'test', '1'])).stdout).toMatch(/was not pinned/);
    expect((await runCli(['-c', s.conf, 'gc'])).code).toBe(0);
    st = await status(s.conf);
    expect(st.snapshots.map((x) => x.id)).toEqual([4]);
  });

  it('refuses to pin a snapshot that is not kept (exit 2)', async () => {
    const s = await store('');
    await s.version('v1');
    const r = await runCli(['-c', s.conf, 'pin', 'test', '5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no snapshot 5 \(kept: 1\)/);
    expect((await runCli(['-c', s.conf, 'pin', 'test', 'x'])).code).toBe(2);
  });
});
