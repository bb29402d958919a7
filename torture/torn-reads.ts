/**
 * 1. Torn reads. A writer syncs new versions back to back while readers walk
 * the whole tree and read every file; every file says its version. A pass
 * that sees two versions, or a file that vanishes between listing and
 * reading, is torn. In-place mode is the baseline: it tears by design.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Repos } from '../dist/index.js';
import { cli, readVersions, repoSection, writeConf, writeVersion, workDir, type CaseOptions, type CaseReport, type Row } from './lib.js';

const FILES = 400;

interface Reader {
  name: string;
  read: (location: string) => Promise<string> | string;
  /** Read under a lease instead (the reader protocol). */
  leased?: boolean;
  /** Not protected by design: shown, not counted as a failure. */
  baseline?: boolean;
}

interface Tally {
  passes: number;
  torn: number;
  vanished: number;
  garbled: number;
}

async function scenario(
  opts: CaseOptions,
  tag: string,
  extra: string,
  readers: Reader[],
  versions: number,
): Promise<{ syncs: number; failedSyncs: number; tallies: Map<string, Tally>; readers: Reader[] }> {
  const dir = await workDir(opts.work, `torn-${tag}`);
  const up = path.join(dir, 'upstream');
  await writeVersion(up, FILES, 1);
  const conf = await writeConf(
    dir,
    extra === 'in-place'
      ? `[torn]\nlocation = ${path.join(dir, 'repo')}\nsync-type = local\nsync-uri = ${up}\nsync-allow-hardlinks = no\n`
      : repoSection('torn', dir, extra),
  );
  const first = await cli(['-q', '-c', conf, 'sync']);
  if (first.code !== 0) throw new Error(`torn reads (${tag}): first sync failed: ${first.stderr}`);
  const repo = Repos.load({ path: conf }).get('torn');
  const location = path.join(dir, 'repo');

  let writing = true;
  let syncs = 0;
  let failedSyncs = 0;
  const writer = (async () => {
    try {
      for (let v = 2; v <= versions; v++) {
        await writeVersion(up, FILES, v);
        const r = await cli(['-q', '-c', conf, 'sync']);
        syncs++;
        if (r.code !== 0) failedSyncs++;
      }
    } finally {
      writing = false;
    }
  })();

  const tallies = new Map<string, Tally>();
  const loops = readers.flatMap((r) =>
    [0, 1].map(async () => {
      const t = tallies.get(r.name) ?? { passes: 0, torn: 0, vanished: 0, garbled: 0 };
      tallies.set(r.name, t);
      while (writing) {
        if (r.leased) {
          await repo.withLease(async (lease) => count(t, await readVersions(lease.path)));
        } else {
          count(t, await readVersions(await r.read(location)));
        }
      }
    }),
  );
  await Promise.all([writer, ...loops]);
  await fs.rm(dir, { recursive: true, force: true }).catch(() => undefined);
  return { syncs, failedSyncs, tallies, readers };
}

function count(t: Tally, r: Awaited<ReturnType<typeof readVersions>>): void {
  t.passes++;
  if (r.versions.size > 1) t.torn++;
  if (r.vanished > 0) t.vanished++;
  if (r.garbled > 0) t.garbled++;
}

function rows(label: string, res: Awaited<ReturnType<typeof scenario>>): Row[] {
  const out: Row[] = [];
  for (const [name, t] of res.tallies) {
    const baseline = res.readers.find((r) => r.name === name)?.baseline === true;
    const bad = t.torn + t.vanished + t.garbled;
    out.push({
      what: `${label}: ${name}`,
      tried: t.passes,
      outcome: `${t.passes} whole-tree passes during ${res.syncs} syncs (${res.failedSyncs} failed): ${t.torn} saw two versions, ${t.vanished} met a vanishing file, ${t.garbled} read a partial file`,
      bad,
      ...(baseline ? { baseline: true } : {}),
    });
  }
  out.push({ what: `${label}: syncs`, tried: res.syncs, outcome: `${res.failedSyncs} failed`, bad: res.failedSyncs });
  return out;
}

export async function tornReads(opts: CaseOptions): Promise<CaseReport> {
  const versions = opts.long ? 200 : 12;
  const out: Row[] = [];
  const resolveOnce: Reader = { name: 'readers resolving the location once per pass', read: (loc) => fs.realpath(loc) };

  opts.log(`torn reads: RCU, default collection (${versions} versions)`);
  out.push(...rows('RCU, default collection (1 spare, 7-day TTL)', await scenario(opts, 'rcu', '', [resolveOnce], versions)));

  opts.log('torn reads: RCU, collecting everything unleased at once');
  const aggressive = await scenario(
    opts,
    'rcu-gc',
    'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0',
    [
      { name: 'readers holding a lease per pass', read: () => '', leased: true },
      { ...resolveOnce, name: 'readers without a lease (unprotected by design: shown for contrast)', baseline: true },
    ],
    versions,
  );
  out.push(...rows('RCU, no spare snapshots, TTL 0', aggressive));

  opts.log('torn reads: in-place baseline');
  const inplace = await scenario(opts, 'inplace', 'in-place', [{ name: 'readers of the location', read: (loc) => loc, baseline: true }], versions);
  out.push(...rows('in-place mode (baseline)', inplace));
  return { title: 'Torn reads', rows: out, skipped: [] };
}
