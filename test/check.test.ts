/**
 * `reposnap check`: what each repository needs here, found without syncing:
 * exit 0 when all is there, 1 naming each problem, 2 for a configuration
 * error; the backend `auto` picks once the store exists.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

/** A PATH with the basic tools only: no rsync, no git, no gpg. */
async function barePath(dir: string): Promise<string> {
  const bin = path.join(dir, 'bare-bin');
  await fs.mkdir(bin, { recursive: true });
  for (const tool of ['sh', 'stat', 'cp', 'sync', 'id', 'getent', 'setpriv', 'du', 'rm']) {
    for (const d of ['/usr/bin', '/bin']) {
      const p = path.join(d, tool);
      if (await fs.access(p).then(() => true, () => false)) {
        await fs.symlink(p, path.join(bin, tool)).catch(() => undefined);
        break;
      }
    }
  }
  return bin;
}

describe('reposnap check', () => {
  it('says ok, with the tools, the filesystem and (once the store exists) the backend', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: '1\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    let r = await runCli(['-c', conf, 'check']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^test {2}ok$/m);
    expect(r.stdout).toMatch(/backend chosen at the first sync/);
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    r = await runCli(['-c', conf, 'check', 'test', '--json']);
    expect(r.code).toBe(0);
    const json = (JSON.parse(r.stdout) as { results: unknown }).results as { repos: Array<{ repo: string; problems: string[]; store: { backend: string; filesystem: string } }> };
    expect(json.repos[0]).toMatchObject({ repo: 'test', problems: [] });
    expect(json.repos[0]?.store.backend).toMatch(/^(btrfs|reflink|hardlink|copy)$/);
    expect(json.repos[0]?.store.filesystem).toBeTruthy();
  });

  it('names each missing tool and an unreadable local source (exit 1)', async () => {
    const dir = tmpdir();
    const conf = await writeConf(
      dir,
      `[over-rsync]\nlocation = ${dir}/a\nsync-type = rsync\nsync-uri = rsync://127.0.0.1/x\nsync-rcu = yes\nsync-rcu-store-dir = ${dir}/a-store\n\n` +
        `[over-git]\nlocation = ${dir}/b\nsync-type = git\nsync-uri = https://127.0.0.1/b.git\n\n` +
        `[from-here]\nlocation = ${dir}/c\nsync-type = local\nsync-uri = ${dir}/missing\n`,
    );
    const r = await runCli(['-c', conf, 'check'], { env: { ...process.env, PATH: await barePath(dir) } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^over-rsync {2}1 problem\n {2}- rsync is not installed \(needed for sync-type = rsync\)$/m);
    expect(r.stdout).toMatch(/^over-git {2}1 problem\n {2}- git is not installed \(needed for sync-type = git\)$/m);
    expect(r.stdout).toMatch(/^from-here {2}1 problem\n {2}- source .*\/missing does not exist or cannot be read$/m);
  });

  it('reports a configuration error as every command does (exit 2, file and line)', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, `[broken]\nlocation = ${dir}/x\nsync-type = rsync\nsync-uri = rsync://127.0.0.1/x\nsync-rcu = yes\n`);
    const r = await runCli(['-c', conf, 'check']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repos\.conf:\d+.*sync-rcu-store-dir/);
  });
});
