/**
 * The sync-rcu steps of Portage's test_sync_local.py, run against reposnap
 * with the real rsync and the real CLI: a plain-directory location migrated;
 * sync; upstream timestamp bumped; sync; store dir deleted under a dangling
 * symlink; sync; layout reverted by hand; location emptied; sync twice.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, readTree, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

describe('Portage test_sync_local sync-rcu scenario', () => {
  it('recovers from every layout mishap and always ends equal to upstream', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    const location = path.join(dir, 'repo');
    const store = path.join(dir, 'store');
    await writeTree(up, {
      'metadata/timestamp.chk': 'Sat, 21 Nov 2026 00:00:00 +0000\n',
      'metadata/layout.conf': 'masters =\n',
      'profiles/repo_name': 'test_repo\n',
      'dev-libs/A/A-0.ebuild': 'EAPI=8\n',
      'dev-libs/A/Manifest': 'DIST A-0.tar.gz 1\n',
    });
    // The repository exists as a plain directory, as before sync-rcu was enabled.
    await writeTree(location, { 'dev-libs/A/A-0.ebuild': 'EAPI=7 (older)\n', 'profiles/repo_name': 'test_repo\n' });
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0', 'rsync', `file://${up}`));

    const sync = async (): Promise<string> => {
      const r = await runCli(['--config', conf, 'sync']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      // After every sync the location is a symlink into the store whose tree
      // equals upstream exactly.
      expect(await fs.readlink(location)).toBe(path.join(store, 'latest'));
      expect(await readTree(`${location}/`)).toEqual(await readTree(up));
      return r.stdout;
    };

    // 1. Migration of the plain directory, then the sync on top of it.
    const first = await sync();
    expect(first).toMatch(/updated to snapshot 2 .*migrated the existing directory as snapshot 1/);
    expect(await fs.readFile(path.join(store, 'snapshots/1/dev-libs/A/A-0.ebuild'), 'utf8')).toBe('EAPI=7 (older)\n');
    await expect(fs.lstat(path.join(dir, '.repo.reposnap-old'))).rejects.toThrow();

    // 2. Nothing new upstream.
    expect(await sync()).toMatch(/test: up to date \(snapshot 2\)/);

    // 3. Upstream bumps its timestamp.
    // (Same size: rsync's quick check sees it by the mtime, which upstream
    // moves on by at least a second, as a real bump would.)
    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'Sat, 21 Nov 2026 00:00:01 +0000\n');
    const later = new Date(Date.now() + 5000);
    await fs.utimes(path.join(up, 'metadata/timestamp.chk'), later, later);
    expect(await sync()).toMatch(/updated to snapshot 3/);

    // 4. The store is deleted: the location is a dangling symlink.
    await fs.rm(store, { recursive: true });
    await expect(fs.stat(location)).rejects.toThrow();
    expect(await sync()).toMatch(/updated to snapshot 1\b/);

    // 5. The layout is reverted by hand: the snapshot becomes a plain
    //    directory at the location and the store is removed.
    await fs.rename(location, `${location}.bak`);
    await fs.rename(await fs.realpath(`${location}.bak`), location);
    await fs.unlink(`${location}.bak`);
    await fs.rm(store, { recursive: true });
    expect(await sync()).toMatch(/up to date \(snapshot 1\); migrated the existing directory as snapshot 1/);

    // 6. The location is emptied (rm -rf, mkdir) with the store in place.
    await fs.rm(location, { recursive: true });
    await fs.mkdir(location);
    expect(await sync()).toMatch(/up to date \(snapshot 1\)/);

    // 7. Emptied again, with the store gone too; then sync twice.
    await fs.rm(location, { recursive: true });
    await fs.rm(store, { recursive: true });
    await fs.mkdir(location);
    expect(await sync()).toMatch(/updated to snapshot 1\b/);
    expect(await sync()).toMatch(/up to date \(snapshot 1\)/);
  });
});
