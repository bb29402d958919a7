/**
 * `reposnap list`: one line per repository, with when a sync last ended
 * well and how, recorded also when upstream was found unchanged.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, tmpdir, writeConf, writeTree } from './helpers.js';

describe('reposnap list', () => {
  it('shows mode, backend, snapshot and the last sync that ended well, for every repo', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: '1\n' });
    const conf = await writeConf(
      dir,
      `[snap]\nlocation = ${dir}/snap\nsync-type = local\nsync-uri = ${dir}/upstream\nsync-rcu = yes\nsync-rcu-store-dir = ${dir}/snap-store\n\n` +
        `[plain]\nlocation = ${dir}/plain\nsync-type = local\nsync-uri = ${dir}/upstream\n\n` +
        `[never]\nlocation = ${dir}/never\nsync-type = local\nsync-uri = ${dir}/upstream\nsync-rcu = yes\nsync-rcu-store-dir = ${dir}/never-store\n\n` +
        `[hg]\nlocation = ${dir}/hg\nsync-type = mercurial\nsync-uri = https://127.0.0.1/hg\n`,
    );
    expect((await runCli(['-c', conf, 'sync', 'snap', 'plain'])).code).toBe(0);
    let json = (JSON.parse((await runCli(['-c', conf, 'list', '--json'])).stdout) as { results: unknown }).results as {
      repos: Array<{ repo: string; mode: string; snapshot: number | null; lastCheck: { outcome: string } | null }>;
      unmanaged: Array<{ repo: string }>;
    };
    expect(json.repos.find((r) => r.repo === 'snap')).toMatchObject({ mode: 'rcu', snapshot: 1, lastCheck: { outcome: 'updated' } });
    expect(json.repos.find((r) => r.repo === 'plain')).toMatchObject({ mode: 'quarantine', snapshot: null, lastCheck: { outcome: 'updated' } });
    expect(json.repos.find((r) => r.repo === 'never')).toMatchObject({ snapshot: null, lastCheck: null });
    expect(json.unmanaged).toEqual([expect.objectContaining({ repo: 'hg' })]);

    // A sync that finds nothing new is recorded too.
    expect((await runCli(['-c', conf, 'sync', 'snap'])).code).toBe(0);
    json = (JSON.parse((await runCli(['-c', conf, 'list', '--json'])).stdout) as { results: typeof json }).results;
    expect(json.repos.find((r) => r.repo === 'snap')?.lastCheck?.outcome).toBe('up-to-date');

    const text = (await runCli(['-c', conf, 'list'])).stdout;
    expect(text).toMatch(/^snap +rcu +\S+ +snapshot 1 +committed .* ago +last sync .* ago, up to date$/m);
    expect(text).toMatch(/^plain +quarantine .* last sync .* ago, updated$/m);
    expect(text).toMatch(/^never +rcu .* not synced .* never synced by reposnap$/m);
    expect(text).toMatch(/^hg +portage .* not managed by reposnap/m);
    expect((await runCli(['-c', conf, 'status', 'snap'])).stdout).toMatch(/last sync +\S+ \(.* ago\), up to date/);
  });
});
