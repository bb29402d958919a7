/**
 * Resumable staging: a sync killed mid-transfer leaves its staging tree, and
 * the next sync takes it over and transfers only what is missing. Prepared
 * staging: a clone of the new latest made after commit for the next sync.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { FileLock } from '../src/lock/file-lock.js';
import { rcuConf, runCli, sleep, startCli, tmpdir, writeConf } from './helpers.js';

const FILES = 400;
const SIZE = 64 * 1024;

async function bigTree(root: string, tag: string): Promise<number> {
  const chunk = Buffer.alloc(SIZE, tag);
  for (let d = 0; d < FILES / 50; d++) {
    await fs.mkdir(path.join(root, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 50 }, (_, i) => fs.writeFile(path.join(root, `d${d}`, `f${i}`), chunk)));
  }
  return FILES * SIZE;
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  for (const e of entries) if (e.isFile() && !e.name.includes('reposnap-tmp') && !e.name.startsWith('.')) n++;
  return n;
}

/** Start a sync and SIGKILL it once its staging holds at least `want` files. */
async function killMidTransfer(conf: string, stagingRoot: string, want: number): Promise<number> {
  const run = startCli(['-c', conf, 'sync']);
  let exited = false;
  void run.done.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error('the sync finished before it could be interrupted');
    const txs = await fs.readdir(stagingRoot).catch(() => [] as string[]);
    const dirs = txs.filter((t) => !t.includes('.'));
    const n = dirs.length > 0 ? await countFiles(path.join(stagingRoot, dirs[0] as string)) : 0;
    if (n >= want) {
      run.child.kill('SIGKILL');
      await run.done;
      return n;
    }
    await sleep(2);
  }
}

describe('resumable staging', () => {
  for (const type of ['local', 'rsync']) {
    it(`a sync after a killed one takes over its staging and transfers less than a full copy (${type})`, async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      const total = await bigTree(up, 'a');
      // Slow rsync down so that the kill lands mid-transfer on a fast disk.
      // Without a prepared clone: what is left in staging afterwards is asserted.
      const extra = `${type === 'rsync' ? 'sync-rsync-extra-opts = --bwlimit=20000\n' : ''}sync-rcu-prepare-staging = no`;
      const conf = await writeConf(dir, rcuConf(dir, extra, type));
      const stagingRoot = path.join(dir, 'store', 'reposnap', 'staging');

      const had = await killMidTransfer(conf, stagingRoot, FILES / 4);
      expect(had).toBeLessThan(FILES);
      // An orphaned rsync inherited the staging lock and keeps it until it
      // notices its parent is gone; nobody takes the staging over before that.
      let staging: Array<{ base: number | null; locked: boolean }> = [];
      for (let i = 0; i < 200; i++) {
        const st = (JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout) as { results: unknown }).results as {
          repos: Array<{ staging: Array<{ base: number | null; locked: boolean }> }>;
        };
        staging = st.repos[0]?.staging ?? [];
        if (staging.every((s) => !s.locked)) break;
        await sleep(50);
      }
      expect(staging).toEqual([expect.objectContaining({ base: null, locked: false })]);

      const r = await runCli(['-c', conf, 'sync', '--json']);
      expect(r.code).toBe(0);
      const report = (JSON.parse(r.stdout) as { results: Array<{ resumed: boolean; changes: { bytesTransferred: number } }> }).results[0];
      expect(report?.resumed).toBe(true);
      // What the killed sync already had is not fetched again.
      expect(report?.changes.bytesTransferred).toBeGreaterThan(0);
      expect(report?.changes.bytesTransferred).toBeLessThanOrEqual(total - (had - 1) * SIZE);
      expect(await countFiles(await Repos.load({ path: conf }).get('test').currentPath())).toBe(FILES);
      expect(await fs.readdir(stagingRoot)).toEqual([]);
    });
  }

  it('discards abandoned staging cloned from a snapshot that is no longer latest', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    const stagingRoot = path.join(dir, 'store', 'reposnap', 'staging');
    await fs.mkdir(up);
    await fs.writeFile(path.join(up, 'f'), 'one\n');
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-prepare-staging = no'));
    const repo = Repos.load({ path: conf }).get('test');
    await repo.sync();
    // An update on top of snapshot 1 dies, leaving its staging.
    const dead = await repo.storage.initUpdate();
    await repo.storage.abortUpdate(dead, { keep: true });
    const tx = (await fs.readdir(stagingRoot)).find((n) => n.endsWith('.lock'))?.replace(/\.lock$/, '') as string;
    // While something holds it, another sync commits snapshot 2 without it.
    const held = await FileLock.acquire(path.join(stagingRoot, `${tx}.lock`));
    await fs.writeFile(path.join(up, 'f'), 'two!\n');
    const r2 = await repo.sync();
    expect(r2.resumed).toBe(false);
    expect(r2.snapshot?.id).toBe(2);
    await held.release();
    // Built on 1, latest is 2: the next sync discards it instead of resuming.
    await fs.writeFile(path.join(up, 'f'), 'three\n');
    const r3 = await repo.sync();
    expect(r3.resumed).toBe(false);
    expect(r3.snapshot?.id).toBe(3);
    expect(await fs.readdir(stagingRoot)).toEqual([]);
  });
});

describe('prepared staging (sync-rcu-prepare-staging)', () => {
  it('clones the new latest after commit; the next sync starts from it', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await fs.mkdir(up);
    for (let i = 0; i < 50; i++) await fs.writeFile(path.join(up, `f${i}`), `${i}\n`);
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-prepare-staging = yes'));
    const repo = Repos.load({ path: conf }).get('test');
    const r1 = await repo.sync();
    expect(r1.timings.prepareNextMs).toBeGreaterThan(0);
    let st = await repo.status();
    expect(st.staging).toEqual([expect.objectContaining({ base: 1, locked: false })]);

    // Nothing changed (found by comparing with the snapshot, before the
    // prepared clone is even opened): the prepared clone stays ready.
    const r2 = await repo.sync();
    expect(r2.outcome).toBe('up-to-date');
    expect(r2.unchangedBeforeClone).toBe(true);
    st = await repo.status();
    expect(st.staging).toEqual([expect.objectContaining({ base: 1 })]);

    await fs.writeFile(path.join(up, 'f1'), 'changed\n');
    const r3 = await repo.sync();
    expect(r3).toMatchObject({ prepared: true, resumed: false });
    expect(r3.snapshot?.id).toBe(2);
    expect(r3.changes.bytesTransferred).toBe('changed\n'.length);
    st = await repo.status();
    expect(st.staging).toEqual([expect.objectContaining({ base: 2, locked: false })]);
    // The prepared clone shares its files with snapshot 2 (hardlinks).
    const tx = st.staging[0]?.tx as string;
    const a = await fs.stat(path.join(dir, 'store', 'reposnap', 'staging', tx, 'f3'));
    const b = await fs.stat(path.join(dir, 'store', 'snapshots', '2', 'f3'));
    expect(a.ino).toBe(b.ino);
  });

  it('makes a clone durable before its record calls it whole', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await fs.mkdir(up);
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(up, `f${i}`), `${i}\n`);
    // `sync` on PATH behind a wrapper that writes down, for each `sync -f` of
    // a staging tree, the state its record holds at that moment.
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    const real = execFileSync('sh', ['-c', 'command -v sync'], { encoding: 'utf8' }).trim();
    await fs.writeFile(
      path.join(bin, 'sync'),
      `#!/bin/sh
if [ "$1" = -f ]; then
  case "$2" in
    */reposnap/staging/*) tx=$(basename "$2"); echo "$tx $(grep -o '"state":"[a-z]*"' "$(dirname "$2")/$tx.json")" >> ${dir}/syncs ;;
  esac
fi
exec ${real} "$@"
`,
      { mode: 0o755 },
    );
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved ?? ''}`;
    try {
      const repo = Repos.load({ path: await writeConf(dir, rcuConf(dir, 'sync-rcu-backend = hardlink')) }).get('test');
      await repo.sync();
      await fs.writeFile(path.join(up, 'f1'), 'changed\n');
      await repo.sync();
      const syncs = (await fs.readFile(path.join(dir, 'syncs'), 'utf8')).trim().split('\n');
      // The clone prepared after the first sync, taken by the second: flushed while still "cloning".
      const prepared = (await repo.status()).staging[0]?.tx as string;
      expect(syncs.filter((l) => l.endsWith('"state":"cloning"')).length).toBeGreaterThanOrEqual(2);
      expect(syncs).toContain(`${prepared} "state":"cloning"`);
      expect((await repo.status()).staging[0]).toMatchObject({ base: 2 });
    } finally {
      process.env.PATH = saved;
    }
  });
});
