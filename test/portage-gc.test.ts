/**
 * Sharing a store with Portage: Portage's own sync-rcu collection ages a
 * snapshot by its folder's mtime, and rsync -a copies upstream's top folder
 * mtime (days old) onto a new snapshot. reposnap gives each snapshot's top
 * folder its commit time, so an `emerge --sync` right after a reposnap sync
 * deletes nothing young.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSnapshotId } from '../src/store/layout.js';
import { rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

const DAY_MS = 24 * 3600 * 1000;

/**
 * What Portage's HardlinkRcuRepoStorage.garbage_collection() does
 * (lib/portage/repository/storage/hardlink_rcu.py), restated: every name in
 * snapshots/ is a number; the spare + 1 highest are kept whatever their
 * age; of the rest, each whose folder mtime is older than the TTL goes.
 * Returns the ids it would delete (it deletes nothing itself).
 */
async function portageWouldCollect(storeDir: string, opts: { ttlDays: number; spare: number }): Promise<number[]> {
  const snapshotsDir = path.join(storeDir, 'snapshots');
  const ids = (await fs.readdir(snapshotsDir)).map((n) => parseSnapshotId(n) as number).sort((a, b) => a - b);
  const candidates = ids.slice(0, Math.max(0, ids.length - (opts.spare + 1)));
  const gone: number[] = [];
  for (const id of candidates) {
    const st = await fs.stat(path.join(snapshotsDir, String(id)));
    if (Date.now() - st.mtimeMs >= opts.ttlDays * DAY_MS) gone.push(id);
  }
  return gone;
}

describe("Portage's collection on a store reposnap writes", () => {
  for (const type of ['rsync', 'local']) {
    it(`deletes nothing young after several ${type} syncs from an upstream whose top folder is 40 days old`, async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      const old = new Date(Date.now() - 40 * DAY_MS);
      const conf = await writeConf(dir, rcuConf(dir, 'sync-rcu-spare-snapshots = 5\nsync-rcu-ttl-days = 7', type));
      for (let i = 1; i <= 4; i++) {
        await writeTree(up, { 'metadata/timestamp.chk': `sync ${i}\n`, [`cat/pkg-${i}.ebuild`]: 'EAPI=8\n' });
        await fs.utimes(up, old, old);
        expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
        const top = await fs.stat(path.join(dir, 'store', 'snapshots', String(i)));
        expect(Math.abs(Date.now() - top.mtimeMs)).toBeLessThan(60_000);
      }
      expect(await portageWouldCollect(path.join(dir, 'store'), { ttlDays: 7, spare: 1 })).toEqual([]);
    });
  }
});
