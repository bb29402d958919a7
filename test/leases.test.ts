/**
 * Readers never lose their snapshot: leases, `exec`, reader-aware collection,
 * and readers beside repeated syncs with no spare snapshots at all.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { CLI, rcuConf, ROOT, runCli, sleep, startCli, tmpdir, wholeVersion, writeConf, writeVersionedTree } from './helpers.js';

const N = 300;
const NO_SPARES = 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0';

interface StatusJson {
  repos: Array<{ snapshots: Array<{ id: number; keepReasons: string[]; leases: { count: number; pids: number[] } }> }>;
}

async function snapshotIds(dir: string): Promise<number[]> {
  return (await fs.readdir(path.join(dir, 'store', 'snapshots'))).map(Number).sort((a, b) => a - b);
}

/** A reader program: checks its snapshot is whole and of one version until told to stop. */
async function readerScript(dir: string): Promise<string> {
  const p = path.join(dir, 'reader.mjs');
  await fs.writeFile(
    p,
    `import fs from 'node:fs';
import path from 'node:path';
const root = process.env.REPOSNAP_SNAPSHOT;
const stop = process.argv[2];
let rounds = 0;
const walk = (d, out) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p, out); else out.push(p); } return out; };
for (;;) {
  const version = fs.readFileSync(path.join(root, 'VERSION'), 'utf8').trim();
  const files = walk(root, []);
  if (files.length !== ${N + 1}) { console.error('files', files.length); process.exit(2); }
  for (const f of files) {
    if (f.endsWith('VERSION')) continue;
    const v = /^version=(.*)/.exec(fs.readFileSync(f, 'utf8'))[1];
    if (v !== version) { console.error('torn', f, v, version); process.exit(3); }
  }
  rounds++;
  if (fs.existsSync(stop)) break;
}
console.log(JSON.stringify({ rounds, id: process.env.REPOSNAP_SNAPSHOT_ID, version: fs.readFileSync(path.join(root, 'VERSION'), 'utf8').trim() }));
`,
  );
  return p;
}

describe('leases and exec', () => {
  it('a reader inside exec keeps snapshot N through five commits with ttl 0 and spare 0; N goes once it exits', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, N, 'v0');
    const conf = await writeConf(dir, rcuConf(dir, NO_SPARES));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    const stopFile = path.join(dir, 'stop');
    const reader = startCli(['-c', conf, 'exec', 'test', '--', process.execPath, await readerScript(dir), stopFile]);
    await sleep(300);
    for (let v = 1; v <= 5; v++) {
      await writeVersionedTree(up, N, `v${v}`);
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`updated to snapshot ${v + 1}\\b`));
      // Snapshot 1 is leased: kept whatever the TTL and spare count.
      expect(await snapshotIds(dir)).toContain(1);
      const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: StatusJson }).results;
      const s1 = st.repos[0]?.snapshots.find((s) => s.id === 1);
      expect(s1?.keepReasons).toEqual(['leased']);
      expect(s1?.leases.pids).toContain(reader.child.pid);
    }
    // Snapshots 2..5 were neither latest nor leased: collected as they aged out.
    expect(await snapshotIds(dir)).toEqual([1, 6]);
    const dry = await runCli(['-c', conf, 'gc', '--dry-run']);
    expect(dry.stdout).toMatch(new RegExp(`1 {2}kept: leased by pid [0-9, ]*${reader.child.pid}`));
    expect(dry.stdout).toMatch(/6 {2}kept: latest/);

    await fs.writeFile(stopFile, '');
    const done = await reader.done;
    expect(done.stderr).toBe('');
    expect(done.code).toBe(0);
    const out = JSON.parse(done.stdout) as { rounds: number; id: string; version: string };
    expect(out.id).toBe('1');
    expect(out.version).toBe('v0');
    expect(out.rounds).toBeGreaterThan(0);

    const gc = await runCli(['-c', conf, 'gc']);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/1 {2}deleted/);
    expect(await snapshotIds(dir)).toEqual([6]);
  });

  it('exec passes the exit status, the environment and forwarded signals', async () => {
    const dir = tmpdir();
    await writeVersionedTree(path.join(dir, 'upstream'), 3, 'v0');
    const conf = await writeConf(dir, rcuConf(dir));
    await runCli(['-c', conf, 'sync']);
    const env = await runCli(['-c', conf, 'exec', 'test', '--', 'sh', '-c', 'echo "$REPOSNAP_SNAPSHOT_ID $REPOSNAP_SNAPSHOT"; exit 7']);
    expect(env.code).toBe(7);
    expect(env.stdout).toBe(`1 ${path.join(dir, 'store', 'snapshots', '1')}\n`);

    // SIGTERM to reposnap reaches the command, which reports it and exits 42.
    const trap = startCli(['-c', conf, 'exec', 'test', '--', 'sh', '-c', 'trap "echo got-term; exit 42" TERM; echo ready; while :; do sleep 0.05; done']);
    await new Promise<void>((resolve) => {
      trap.child.stdout?.on('data', (d: string) => {
        if (String(d).includes('ready')) resolve();
      });
    });
    trap.child.kill('SIGTERM');
    const r = await trap.done;
    expect(r.stdout).toBe('ready\ngot-term\n');
    expect(r.code).toBe(42);

    // A command killed by a signal: reposnap dies of the same signal.
    const killed = await runCli(['-c', conf, 'exec', 'test', '--', 'sh', '-c', 'kill -KILL $$']);
    expect(killed.signal).toBe('SIGKILL');

    const missing = await runCli(['-c', conf, 'exec', 'test', '--', 'no-such-command-here']);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toMatch(/cannot run no-such-command-here: command not found/);
  });

  it('kill -9 of a reader frees its lease', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, 3, 'v0');
    const conf = await writeConf(dir, rcuConf(dir, NO_SPARES));
    await runCli(['-c', conf, 'sync']);

    // A library reader in its own process, and an exec reader with its
    // command, each in their own process group so kill -9 takes all of it.
    const holder = path.join(dir, 'holder.mjs');
    await fs.writeFile(
      holder,
      `import { Repos } from ${JSON.stringify(path.join(ROOT, 'dist', 'index.js'))};
const lease = await Repos.load({ path: ${JSON.stringify(conf)} }).get('test').lease();
console.log(lease.id);
setInterval(() => {}, 1000);
`,
    );
    const lib = spawn(process.execPath, [holder], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    await new Promise((r) => lib.stdout.once('data', r));
    const ex = spawn(process.execPath, [CLI, '-c', conf, 'exec', 'test', '--', 'sleep', '60'], { stdio: 'ignore', detached: true });
    await sleep(500);

    await writeVersionedTree(up, 3, 'v1');
    await runCli(['-c', conf, 'sync']);
    expect(await snapshotIds(dir)).toEqual([1, 2]);
    const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: StatusJson }).results;
    expect(st.repos[0]?.snapshots[0]?.leases.count).toBeGreaterThanOrEqual(3); // lib, exec, sleep

    process.kill(-(lib.pid as number), 'SIGKILL');
    process.kill(-(ex.pid as number), 'SIGKILL');
    await sleep(200);
    const gc = await runCli(['-c', conf, 'gc']);
    expect(gc.stdout).toMatch(/1 {2}deleted/);
    expect(await snapshotIds(dir)).toEqual([2]);
  });

  it('readers taking leases beside repeated syncs (spare 0, ttl 0) never see two versions or a vanishing file', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeVersionedTree(up, N, 'v0');
    const conf = await writeConf(dir, rcuConf(dir, NO_SPARES));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const repo = Repos.load({ path: conf }).get('test');

    let stop = false;
    let reads = 0;
    const errors: string[] = [];
    const readers = [0, 1, 2].map(async () => {
      while (!stop) {
        try {
          // Long reads, so that collections happen while a lease is held.
          await repo.withLease(async (lease) => {
            for (let i = 0; i < 4; i++) await wholeVersion(lease.path, N);
          });
          reads++;
        } catch (err) {
          errors.push(String(err));
        }
      }
    });
    for (let v = 1; v <= 6; v++) {
      await writeVersionedTree(up, N, `v${v}`);
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    }
    stop = true;
    await Promise.all(readers);
    expect(errors).toEqual([]);
    expect(reads).toBeGreaterThan(4);
    await repo.gc();
    expect(await snapshotIds(dir)).toEqual([7]);
  });
});

describe('a lease as a disposable', () => {
  it('await using releases the lease at the end of the block, and collection may then take the snapshot', async () => {
    const dir = tmpdir();
    await writeVersionedTree(path.join(dir, 'upstream'), 5, 'v1');
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0'));
    const repo = Repos.load({ path: conf }).get('test');
    await repo.sync();
    {
      await using lease = await repo.lease();
      expect(lease.id).toBe(1);
      await writeVersionedTree(path.join(dir, 'upstream'), 5, 'v2');
      await repo.sync();
      // Held: snapshot 1 outlives the collection after snapshot 2.
      await fs.access(path.join(dir, 'store', 'snapshots', '1'));
    }
    // Released with the block: the next collection takes it.
    await repo.gc();
    await expect(fs.access(path.join(dir, 'store', 'snapshots', '1'))).rejects.toThrow();
  });
});
