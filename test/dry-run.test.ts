/**
 * `sync --dry-run`: what a sync would change, the same for rsync (its plan)
 * and local (a comparison), and nothing written: no snapshot, no staging,
 * no clone; sources that cannot tell without fetching say so.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

async function storeState(dir: string): Promise<string[]> {
  const store = path.join(dir, 'store');
  const staging = await fs.readdir(path.join(store, 'reposnap', 'staging')).catch(() => []);
  return [await fs.readlink(path.join(store, 'latest')), ...(await fs.readdir(path.join(store, 'snapshots'))), ...staging.map((s) => `staging/${s}`)];
}

describe('sync --dry-run', () => {
  for (const type of ['rsync', 'local']) {
    it(`${type}: lists what would change and writes nothing`, async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      const conf = await writeConf(dir, rcuConf(dir, '', type, up));
      expect((await runCli(['-c', conf, 'sync', '--dry-run'])).stdout).toMatch(/^test: not synced yet; the first sync would fetch the whole tree$/m);
      await writeTree(up, {
        'metadata/timestamp.chk': 'T1\n',
        'cat/pkg/pkg-1.ebuild': 'one\n',
        'cat/pkg/Manifest': 'DIST a\n',
        'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
      });
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
      expect((await runCli(['-c', conf, 'sync', '-n'])).stdout.trim()).toBe('test: up to date, nothing to do');

      await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2 longer\n');
      await fs.rm(path.join(up, 'cat/pkg/Manifest'));
      await writeTree(up, { 'cat/new/new-1.ebuild': 'new\n' });
      await fs.chmod(path.join(up, 'scripts/run.sh'), 0o700);
      const before = await storeState(dir);
      const r = await runCli(['-c', conf, 'sync', '--dry-run']);
      expect(r.code, r.stderr).toBe(0);
      const [head, ...lines] = r.stdout.trim().split('\n');
      expect(head).toBe('test: would change 5 entries');
      expect(lines.sort()).toEqual(['  + cat/new/', '  + cat/new/new-1.ebuild', '  - cat/pkg/Manifest', '  ~ metadata/timestamp.chk', '  ~ scripts/run.sh']);
      expect(await storeState(dir)).toEqual(before);
      expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');

      const json = JSON.parse((await runCli(['-c', conf, 'sync', '--dry-run', '--json'])).stdout) as { results: Array<{ outcome: string; changes: Array<{ kind: string; path: string }> }> };
      expect(json.results[0]?.outcome).toBe('changes');
      expect(json.results[0]?.changes).toContainEqual(expect.objectContaining({ kind: 'removed', path: 'cat/pkg/Manifest' }));
      // And the real sync does what was said.
      expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
      expect(await fs.readFile(path.join(dir, 'repo', 'metadata/timestamp.chk'), 'utf8')).toBe('T2 longer\n');
    });
  }

  it('a source that cannot tell without fetching says so; with sync-user it is refused (exit 2)', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, { f: '1\n' });
    const local = await writeConf(dir, rcuConf(dir), 'local.conf');
    expect((await runCli(['-c', local, 'sync'])).code).toBe(0);
    const git = await writeConf(dir, rcuConf(dir, '', 'git', 'https://127.0.0.1:1/none.git'), 'git.conf');
    expect((await runCli(['-c', git, 'sync', '--dry-run'])).stdout).toMatch(/^test: the git source cannot tell what changed without fetching$/m);
    const user = await writeConf(dir, rcuConf(dir, 'sync-umask = 022'), 'user.conf');
    const r = await runCli(['-c', user, 'sync', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/sync --dry-run is not offered with sync-user or sync-umask/);
  });
});
