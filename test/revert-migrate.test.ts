/**
 * `reposnap revert` and `reposnap migrate`, and collection of abandoned
 * staging.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { rcuConf, readTree, runCli, sleep, startCli, tmpdir, writeConf, writeTree } from './helpers.js';

async function synced(extra = ''): Promise<{ dir: string; up: string; conf: string }> {
  const dir = tmpdir();
  const up = path.join(dir, 'upstream');
  await writeTree(up, { 'a/one': '1\n', 'b/two': '2\n', link: { symlink: 'a/one' } });
  const conf = await writeConf(dir, rcuConf(dir, extra));
  expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
  return { dir, up, conf };
}

describe('revert', () => {
  it('refuses while a reader holds a lease (exit 75), then --force reverts anyway', async () => {
    const { dir, up, conf } = await synced();
    const reader = startCli(['-c', conf, 'exec', 'test', '--', 'sleep', '30']);
    await sleep(400);
    const refused = await runCli(['-c', conf, 'revert', 'test']);
    expect(refused.code).toBe(75);
    expect(refused.stderr).toMatch(/repo test: snapshot 1 is leased by pid .*\d.*; not reverting \(use --force/);
    expect(await fs.readlink(path.join(dir, 'repo'))).toBe(path.join(dir, 'store', 'latest'));

    const forced = await runCli(['-c', conf, 'revert', 'test', '--force']);
    expect(forced.code).toBe(0);
    expect((await fs.lstat(path.join(dir, 'repo'))).isDirectory()).toBe(true);
    expect(await readTree(path.join(dir, 'repo'))).toEqual(await readTree(up));
    await expect(fs.lstat(path.join(dir, 'store'))).rejects.toThrow();
    reader.child.kill('SIGTERM');
    await reader.done;
  });

  it('turns the location into a plain directory with the current content and removes the store', async () => {
    const { dir, up, conf } = await synced();
    const r = await runCli(['-c', conf, 'revert', 'test']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/test: .*repo is a plain directory again \(content of snapshot 1\); store .* removed/);
    expect((await fs.lstat(path.join(dir, 'repo'))).isDirectory()).toBe(true);
    expect(await readTree(path.join(dir, 'repo'))).toEqual(await readTree(up));
    await expect(fs.lstat(path.join(dir, 'store'))).rejects.toThrow();
    await expect(fs.lstat(path.join(dir, '.repo.reposnap-old'))).rejects.toThrow();

    // Reverting again: nothing to revert to, and it says so.
    const again = await runCli(['-c', conf, 'revert', 'test']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/test: nothing to revert/);

    // migrate puts it back.
    const m = await runCli(['-c', conf, 'migrate', 'test']);
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(/test: migrated .* into the store as snapshot 1/);
    expect(await fs.readlink(path.join(dir, 'repo'))).toBe(path.join(dir, 'store', 'latest'));
    expect(await readTree(`${path.join(dir, 'repo')}/`)).toEqual(await readTree(up));
    const m2 = await runCli(['-c', conf, 'migrate', 'test']);
    expect(m2.stdout).toMatch(/nothing to migrate/);
  });

  it('finishes a revert killed after its swap: the old symlink beside the location goes too', async () => {
    const { dir, up, conf } = await synced();
    // What a revert killed between the exchange and its clean-up leaves:
    // the location a plain directory, the symlink aside, the store still there.
    const location = path.join(dir, 'repo');
    const aside = path.join(dir, '.repo.reposnap-old');
    await fs.cp(await fs.realpath(location), path.join(dir, 'plain'), { recursive: true, preserveTimestamps: true });
    await fs.rename(location, aside);
    await fs.rename(path.join(dir, 'plain'), location);
    const before = await readTree(location);
    const r = await runCli(['-c', conf, 'revert', 'test']);
    expect(r.code).toBe(0);
    expect((await fs.lstat(location)).isDirectory()).toBe(true);
    expect(await readTree(location)).toEqual(before);
    expect(Object.keys(before).sort()).toEqual(Object.keys(await readTree(up)).sort());
    await expect(fs.lstat(aside)).rejects.toThrow();
    await expect(fs.lstat(path.join(dir, 'store'))).rejects.toThrow();
  });

  it('is refused for a repository without a store', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, `[plain]\nlocation = ${dir}/repo\n`);
    const r = await runCli(['-c', conf, 'revert', 'plain']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repo plain is not an RCU repository/);
  });
});

describe('collection of abandoned staging', () => {
  it('deletes staging abandoned more than a day ago, keeps fresh staging on the current base', async () => {
    const { dir, conf } = await synced('sync-rcu-prepare-staging = no');
    const repo = Repos.load({ path: conf }).get('test');
    const stagingRoot = path.join(dir, 'store', 'reposnap', 'staging');

    const u = await repo.storage.initUpdate();
    await repo.storage.abortUpdate(u, { keep: true });
    const json = (await fs.readdir(stagingRoot)).find((n) => n.endsWith('.json')) as string;
    let gc = await runCli(['-c', conf, 'gc']);
    expect(gc.stdout).not.toMatch(/staging/);
    expect(await fs.readdir(stagingRoot)).toHaveLength(3);

    const info = JSON.parse(await fs.readFile(path.join(stagingRoot, json), 'utf8')) as { createdAt: string };
    info.createdAt = new Date(Date.now() - 2 * 86400_000).toISOString();
    await fs.writeFile(path.join(stagingRoot, json), JSON.stringify(info));
    gc = await runCli(['-c', conf, 'gc']);
    expect(gc.stdout).toMatch(/staging .*: abandoned, deleted/);
    expect(await fs.readdir(stagingRoot)).toEqual([]);
  });
});
