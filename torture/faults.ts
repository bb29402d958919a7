/**
 * 4. Faults. The store's filesystem full (bytes, then inodes: a tmpfs with a
 * size), read-only, and files vanishing from the source while it is read.
 * Each must end in a clean one-line error (or a whole new snapshot), with
 * the previous snapshot current and nothing partial visible, and the next
 * sync after the fault is gone must succeed.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  cli,
  isRoot,
  locationDigest,
  mountTmpfs,
  oneLine,
  random,
  readVersions,
  repoSection,
  run,
  sleep,
  treeDigest,
  unmount,
  writeConf,
  writeVersion,
  workDir,
  type CaseOptions,
  type CaseReport,
  type Row,
} from './lib.js';

interface FaultTally {
  tried: number;
  cleanErrors: number;
  /** Not a clean error: wrong exit, stack trace, several lines. */
  unclean: number;
  /** The location moved off the previous snapshot, or a partial tree showed. */
  visibleDamage: number;
  /** The sync after the fault was removed failed or gave the wrong tree. */
  noRecovery: number;
  messages: Set<string>;
}

const tally = (): FaultTally => ({ tried: 0, cleanErrors: 0, unclean: 0, visibleDamage: 0, noRecovery: 0, messages: new Set() });

function faultRow(what: string, t: FaultTally): Row {
  const msg = [...t.messages].slice(0, 2).join(' / ');
  return {
    what,
    tried: t.tried,
    outcome: `${t.cleanErrors} clean errors${msg ? ` ("${msg}")` : ''}, ${t.unclean} unclean; previous snapshot not current or partial tree visible: ${t.visibleDamage}; next sync failed: ${t.noRecovery}`,
    bad: t.unclean + t.visibleDamage + t.noRecovery,
  };
}

/** A store on a small tmpfs: `fault` makes the next sync fail; `heal` undoes it. */
async function tmpfsFault(
  opts: CaseOptions,
  mountOptions: string,
  times: number,
  fault: (up: string, mnt: string) => Promise<void>,
  heal: (up: string, mnt: string) => Promise<void>,
): Promise<FaultTally | string> {
  const dir = await workDir(opts.work, 'fault');
  const mnt = path.join(dir, 'mnt');
  const why = await mountTmpfs(mnt, mountOptions);
  if (why) return why;
  const t = tally();
  try {
    const up = path.join(dir, 'upstream');
    await writeVersion(up, 300, 1);
    const conf = await writeConf(dir, repoSection('f', mnt, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0', up));
    const first = await cli(['-q', '-c', conf, 'sync']);
    if (first.code !== 0) throw new Error(`first sync on the tmpfs failed: ${first.stderr}`);
    const location = path.join(mnt, 'repo');
    for (let i = 0; i < times; i++) {
      const before = await locationDigest(location);
      await writeVersion(up, 300, 2 + 2 * i);
      await fault(up, mnt);
      const r = await cli(['-q', '-c', conf, 'sync']);
      t.tried++;
      if (r.code === 1 && oneLine(r.stderr)) {
        t.cleanErrors++;
        t.messages.add(r.stderr.trim().replace(/\d+/g, 'N').slice(0, 140));
      } else t.unclean++;
      if ((await locationDigest(location)) !== before) t.visibleDamage++;
      await heal(up, mnt);
      await writeVersion(up, 300, 3 + 2 * i);
      const again = await cli(['-q', '-c', conf, 'sync']);
      if (again.code !== 0 || (await locationDigest(location)) !== (await treeDigest(up))) {
        t.noRecovery++;
        t.messages.add(`recovery: ${again.stderr.trim().slice(0, 140)}`);
      }
    }
  } finally {
    await unmount(mnt);
    await fs.rm(dir, { recursive: true, force: true });
  }
  return t;
}

/** Files vanish and reappear (whole, by rename) in the source while syncs read it. */
async function vanishing(opts: CaseOptions, type: 'local' | 'rsync', times: number): Promise<Row> {
  const dir = await workDir(opts.work, `vanish-${type}`);
  const up = path.join(dir, 'upstream');
  await writeVersion(up, 2000, 1);
  const conf = await writeConf(dir, repoSection('v', dir, `sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0`).replace('sync-type = local', `sync-type = ${type}`));
  await cli(['-q', '-c', conf, 'sync']);
  const location = path.join(dir, 'repo');
  const rnd = random(type === 'local' ? 41 : 42);
  let stop = false;
  let mutations = 0;
  // Delete files and whole directories, then bring them back, over and over.
  const mutator = (async () => {
    while (!stop) {
      const d = path.join(up, `cat-${rnd(80)}`);
      const f = path.join(d, `pkg-${rnd(2000)}.ebuild`);
      await fs.rm(f, { force: true });
      if (rnd(4) === 0) await fs.rm(d, { recursive: true, force: true });
      await sleep(1);
      await fs.mkdir(d, { recursive: true });
      // Written beside the tree, then renamed in: upstream itself never
      // holds a half-written file, so a partial file in a snapshot is ours.
      const tmp = path.join(dir, `new-${mutations}`);
      await fs.writeFile(tmp, `version=${1000 + mutations}\n`);
      await fs.rename(tmp, f);
      mutations++;
    }
  })();
  let ok = 0;
  let clean = 0;
  let unclean = 0;
  let damaged = 0;
  const messages = new Set<string>();
  for (let i = 0; i < times; i++) {
    const before = await locationDigest(location);
    const r = await cli(['-q', '-c', conf, 'sync']);
    const now = await fs.realpath(location);
    if (r.code === 0) {
      ok++;
      const seen = await readVersions(now);
      if (seen.garbled > 0 || seen.vanished > 0) damaged++;
    } else if (r.code === 1 && oneLine(r.stderr)) {
      clean++;
      messages.add(r.stderr.trim().replace(/\d+/g, 'N').slice(0, 140));
      if ((await treeDigest(now)) !== before) damaged++;
    } else unclean++;
  }
  stop = true;
  await mutator;
  await fs.rm(dir, { recursive: true, force: true });
  const msg = [...messages].slice(0, 2).join(' / ');
  return {
    what: `files and directories vanishing from a ${type} source mid-sync`,
    tried: times,
    outcome: `${ok} committed whole snapshots, ${clean} clean errors${msg ? ` ("${msg}")` : ''}, ${unclean} unclean; ${mutations} deletions and re-creations; partial files or moved location: ${damaged}`,
    bad: unclean + damaged,
  };
}

export async function faults(opts: CaseOptions): Promise<CaseReport> {
  const times = opts.long ? 20 : 3;
  const rows: Row[] = [];
  const skipped: string[] = [];
  const big = async (up: string): Promise<void> => {
    await fs.writeFile(path.join(up, 'big.bin'), Buffer.alloc(12 * 2 ** 20, 1));
  };
  const noBig = async (up: string): Promise<void> => {
    await fs.rm(path.join(up, 'big.bin'), { force: true });
  };
  opts.log(`faults: full filesystem (bytes), ${times} times`);
  const full = await tmpfsFault(opts, 'size=8m', times, big, noBig);
  if (typeof full === 'string') skipped.push(`full filesystem: ${full}`);
  else rows.push(faultRow('store filesystem full (8 MiB tmpfs; upstream grows by 12 MiB)', full));

  const many = async (up: string): Promise<void> => {
    await fs.mkdir(path.join(up, 'many'), { recursive: true });
    await Promise.all(Array.from({ length: 3000 }, (_, i) => fs.writeFile(path.join(up, 'many', `f${i}`), '')));
  };
  const noMany = async (up: string): Promise<void> => {
    await fs.rm(path.join(up, 'many'), { recursive: true, force: true });
  };
  opts.log(`faults: out of inodes, ${times} times`);
  const inodes = await tmpfsFault(opts, 'size=64m,nr_inodes=2500', times, many, noMany);
  if (typeof inodes === 'string') skipped.push(`out of inodes: ${inodes}`);
  else rows.push(faultRow('store filesystem out of inodes (tmpfs with 2500; upstream grows by 3000 files)', inodes));

  opts.log(`faults: read-only filesystem, ${times} times`);
  const ro = await tmpfsFault(
    opts,
    'size=64m',
    times,
    async (_up, mnt) => void (await run('mount', ['-o', 'remount,ro', mnt])),
    async (_up, mnt) => void (await run('mount', ['-o', 'remount,rw', mnt])),
  );
  if (typeof ro === 'string') skipped.push(`read-only filesystem: ${ro}`);
  else rows.push(faultRow('store filesystem remounted read-only', ro));
  if (!isRoot) skipped.push('the tmpfs faults need root');

  const syncs = opts.long ? 40 : 5;
  opts.log(`faults: vanishing source files, ${syncs} syncs per source`);
  rows.push(await vanishing(opts, 'local', syncs));
  rows.push(await vanishing(opts, 'rsync', syncs));
  return { title: 'Faults', rows, skipped };
}
