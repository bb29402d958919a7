/**
 * 2. Crashes. kill -9 at random instants of sync, commit, collection,
 * migrate and revert. After every kill: the location resolves to one whole
 * tree that was committed (or, for migrate/revert, the original content), and
 * the same operation run again succeeds. After each series, a final
 * collection must leave no staging, trash or temporary files behind.
 *
 * Then every source is interrupted exactly at each phase boundary
 * (failpoints: after the clone, midway through the fill, after the fill,
 * sealed, renamed) with SIGINT, SIGTERM and SIGKILL, and the sync after it
 * must publish exactly upstream: content, modes, owners, symlinks and
 * deletions, not merely complete.
 */
import { readlinkSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import {
  cli,
  exists,
  interruptAt,
  leftovers,
  locationDigest,
  random,
  repoSection,
  sleep,
  startCli,
  treeDigest,
  writeConf,
  writeVersion,
  workDir,
  type CaseOptions,
  type CaseReport,
  type Row,
} from './lib.js';
import { digest, makeUpstream, SOURCE_TYPES, type SourceType } from './upstreams.js';

const FILES = 800;

interface Series {
  kills: number;
  /** Kills that landed after the process had made its change visible. */
  afterVisible: number;
  exitedFirst: number;
  wrongTree: number;
  retryFailed: number;
  leftovers: string[];
  /** What the runs after a kill said when they failed. */
  messages: Set<string>;
}

function newSeries(): Series {
  return { kills: 0, afterVisible: 0, exitedFirst: 0, wrongTree: 0, retryFailed: 0, leftovers: [], messages: new Set() };
}

/** How long `args` takes uninterrupted, so kill instants cover all of it. */
async function duration(args: string[]): Promise<number> {
  const t0 = performance.now();
  await cli(args);
  return performance.now() - t0;
}

/**
 * Start `args`, kill it with SIGKILL after `delayMs` (or, with `onChange`,
 * as soon as the watched directory changes, plus a few milliseconds).
 * Returns whether it was killed before it exited by itself.
 */
async function killAt(args: string[], delayMs: number, watch?: string): Promise<boolean> {
  const p = startCli(args);
  let exited = false;
  void p.done.then(() => (exited = true));
  if (watch) {
    const before = snapshotNames(watch);
    const deadline = performance.now() + 30_000;
    while (!exited && performance.now() < deadline && snapshotNames(watch) === before) await sleep(1);
    await sleep(delayMs);
  } else {
    await sleep(delayMs);
  }
  const killed = !exited;
  if (killed) p.child.kill('SIGKILL');
  await p.done;
  return killed;
}

function snapshotNames(store: string): string {
  let names = '';
  try {
    names = readdirSync(path.join(store, 'snapshots')).sort().join(',');
  } catch {
    /* not yet */
  }
  try {
    names += `>${readlinkSync(path.join(store, 'latest'))}`;
  } catch {
    /* not yet */
  }
  return names;
}

async function syncSeries(opts: CaseOptions, n: number, seed: number, atCommit: boolean): Promise<Series> {
  const s = newSeries();
  const rnd = random(seed);
  const dir = await workDir(opts.work, 'crash-sync');
  const up = path.join(dir, 'upstream');
  const store = path.join(dir, 'store');
  const location = path.join(dir, 'repo');
  await writeVersion(up, FILES, 1);
  const conf = await writeConf(dir, repoSection('c', dir, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0'));
  await cli(['-q', '-c', conf, 'sync']);
  const committed = new Set([await treeDigest(up)]);
  await writeVersion(up, FILES, 2);
  const t = await duration(['-q', '-c', conf, 'sync']);
  committed.add(await treeDigest(up));
  for (let i = 0; i < n; i++) {
    const v = 3 + i;
    await writeVersion(up, FILES, v);
    const want = await treeDigest(up);
    const killed = await killAt(['-q', '-c', conf, 'sync'], atCommit ? rnd(4) : rnd(Math.ceil(t)), atCommit ? store : undefined);
    s.kills++;
    if (!killed) s.exitedFirst++;
    const now = await locationDigest(location);
    if (now === want) s.afterVisible++;
    if (now !== want && !committed.has(now)) s.wrongTree++;
    committed.add(want);
    const again = await cli(['-q', '-c', conf, 'sync']);
    if (again.code !== 0 || (await locationDigest(location)) !== want) {
      s.retryFailed++;
      s.messages.add(`exit ${again.code}: ${again.stderr.trim().split('\n')[0]}`);
    }
  }
  await cli(['-q', '-c', conf, 'gc']);
  s.leftovers = await leftovers(store, location);
  await fs.rm(dir, { recursive: true, force: true });
  return s;
}

async function gcSeries(opts: CaseOptions, n: number, seed: number): Promise<Series> {
  const s = newSeries();
  const rnd = random(seed);
  const dir = await workDir(opts.work, 'crash-gc');
  const up = path.join(dir, 'upstream');
  const store = path.join(dir, 'store');
  const location = path.join(dir, 'repo');
  // Two configurations of one store: one keeps everything (to make
  // snapshots), the other collects all but the latest (the killed gc).
  const keep = await writeConf(dir, repoSection('c', dir, 'sync-rcu-spare-snapshots = 1000\nsync-rcu-backend = copy'), 'keep.conf');
  const collect = await writeConf(dir, repoSection('c', dir, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0\nsync-rcu-backend = copy'), 'collect.conf');
  let v = 1;
  const makeSnapshots = async (k: number): Promise<string> => {
    for (let j = 0; j < k; j++) {
      await writeVersion(up, FILES, v++);
      await cli(['-q', '-c', keep, 'sync']);
    }
    return treeDigest(up);
  };
  let want = await makeSnapshots(3);
  const t = await duration(['-q', '-c', collect, 'gc']);
  for (let i = 0; i < n; i++) {
    want = await makeSnapshots(2);
    const killed = await killAt(['-q', '-c', collect, 'gc'], rnd(Math.ceil(t)));
    s.kills++;
    if (!killed) s.exitedFirst++;
    if ((await locationDigest(location)) !== want) s.wrongTree++;
    const again = await cli(['-q', '-c', collect, 'gc']);
    const ids = await fs.readdir(path.join(store, 'snapshots'));
    if (again.code !== 0 || ids.length !== 1 || (await locationDigest(location)) !== want) {
      s.retryFailed++;
      s.messages.add(`exit ${again.code}, ${ids.length} snapshots: ${again.stderr.trim().split('\n')[0]}`);
    }
  }
  s.leftovers = await leftovers(store, location);
  await fs.rm(dir, { recursive: true, force: true });
  return s;
}

/** migrate (a plain directory into the store) or revert (the store back into a plain directory). */
async function moveSeries(opts: CaseOptions, op: 'migrate' | 'revert', n: number, seed: number): Promise<Series> {
  const s = newSeries();
  const rnd = random(seed);
  const dir = await workDir(opts.work, `crash-${op}`);
  const up = path.join(dir, 'upstream');
  const store = path.join(dir, 'store');
  const location = path.join(dir, 'repo');
  await writeVersion(up, FILES, 1);
  const want = await treeDigest(up);
  const conf = await writeConf(dir, repoSection('c', dir));
  const reset = async (): Promise<void> => {
    await fs.rm(store, { recursive: true, force: true });
    await fs.rm(location, { recursive: true, force: true });
    for (const n of await fs.readdir(dir)) if (n.includes('reposnap')) await fs.rm(path.join(dir, n), { recursive: true, force: true });
    await fs.cp(up, location, { recursive: true, preserveTimestamps: true });
    if (op === 'revert') await cli(['-q', '-c', conf, 'migrate', 'c']);
  };
  await reset();
  const t = await duration(['-q', '-c', conf, op, 'c']);
  for (let i = 0; i < n; i++) {
    await reset();
    const killed = await killAt(['-q', '-c', conf, op, 'c'], rnd(Math.ceil(t)));
    s.kills++;
    if (!killed) s.exitedFirst++;
    if ((await locationDigest(location)) !== want) s.wrongTree++;
    const again = await cli(['-q', '-c', conf, op, 'c']);
    const st = await fs.lstat(location).catch(() => undefined);
    const shapeOk = op === 'migrate' ? st?.isSymbolicLink() : st?.isDirectory() && !(await exists(store));
    if (again.code !== 0 || !shapeOk || (await locationDigest(location)) !== want) {
      s.retryFailed++;
      s.messages.add(`exit ${again.code}: ${again.stderr.trim().split('\n')[0]}`);
    }
    if (op === 'migrate') {
      await cli(['-q', '-c', conf, 'gc']);
      s.leftovers.push(...(await leftovers(store, location)));
    } else {
      s.leftovers.push(...(await leftovers(store, location)).filter((l) => !l.startsWith('staging') && !l.startsWith('trash')));
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
  return s;
}

const PHASES = ['staged', 'fill-midway', 'filled', 'sealed', 'renamed'];
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGKILL'];

/**
 * One source, interrupted at every phase: sync tree A, serve B, interrupt
 * the update at the failpoint, then sync again and compare with B. Quick:
 * one signal per phase, in turn; long: every signal, `rounds` times.
 */
async function phaseSeries(opts: CaseOptions, type: SourceType, rounds: number): Promise<Series> {
  const s = newSeries();
  const cases: Array<[string, NodeJS.Signals]> = [];
  for (let r = 0; r < rounds; r++) {
    PHASES.forEach((p, i) => {
      if (opts.long) for (const sig of SIGNALS) cases.push([p, sig]);
      else cases.push([p, SIGNALS[i % SIGNALS.length] as NodeJS.Signals]);
    });
  }
  for (const [phase, signal] of cases) {
    const dir = await workDir(opts.work, `crash-${type}`);
    const up = await makeUpstream(type, dir);
    try {
      await up.serveA();
      const conf = await writeConf(dir, `[c]\nlocation = ${path.join(dir, 'repo')}\nsync-rcu = yes\nsync-rcu-store-dir = ${path.join(dir, 'store')}\n${up.conf}`);
      await cli(['-q', '-c', conf, 'sync']);
      const a = await up.expected();
      await up.serveB();
      const b = await up.expected();
      const cut = await interruptAt(['-q', '-c', conf, 'sync'], phase, signal);
      s.kills++;
      if (!cut.reached) {
        s.exitedFirst++;
        s.messages.add(`${phase}: failpoint not reached`);
      }
      const seen = await digest(await fs.realpath(path.join(dir, 'repo'))).catch(() => '');
      if (seen === b) s.afterVisible++;
      if (seen !== a && seen !== b) s.wrongTree++;
      // An orphan the kernel has not reaped may hold the staging lock a moment.
      let again = await cli(['-q', '-c', conf, 'sync', '--no-wait']);
      for (let i = 0; again.code === 75 && i < 100; i++) {
        await sleep(20);
        again = await cli(['-q', '-c', conf, 'sync', '--no-wait']);
      }
      const now = await digest(await fs.realpath(path.join(dir, 'repo'))).catch(() => '');
      if (again.code !== 0 || now !== b) {
        s.retryFailed++;
        s.messages.add(`${phase}/${signal}: exit ${again.code}${now !== b ? ', not upstream' : ''}: ${again.stderr.trim().split('\n')[0]}`);
      }
      await cli(['-q', '-c', conf, 'gc']);
      s.leftovers.push(...(await leftovers(path.join(dir, 'store'), path.join(dir, 'repo'))));
    } finally {
      up.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  return s;
}

function row(what: string, s: Series): Row {
  return {
    what,
    tried: s.kills,
    outcome: `${s.kills - s.exitedFirst} killed mid-run (${s.afterVisible} after the new tree was visible), ${s.exitedFirst} finished first; location not a whole committed tree: ${s.wrongTree}; next run failed or wrong: ${s.retryFailed}; leftovers after a final gc: ${s.leftovers.length}${s.leftovers.length ? ` (${[...new Set(s.leftovers)].slice(0, 3).join(', ')})` : ''}${s.messages.size ? `; failures said: ${[...s.messages].slice(0, 3).join(' / ')}` : ''}`,
    bad: s.wrongTree + s.retryFailed + s.leftovers.length,
  };
}

export async function crashes(opts: CaseOptions): Promise<CaseReport> {
  const n = opts.long ? 100 : 6;
  const rows: Row[] = [];
  opts.log(`crashes: ${n} kills of sync at random instants`);
  rows.push(row('kill -9 of sync at a random instant', await syncSeries(opts, n, 11, false)));
  opts.log(`crashes: ${n} kills of sync around commit`);
  rows.push(row('kill -9 of sync within 0-3 ms of its commit (snapshots/ or latest changing)', await syncSeries(opts, n, 12, true)));
  opts.log(`crashes: ${n} kills of gc`);
  rows.push(row('kill -9 of gc at a random instant (two snapshots to collect)', await gcSeries(opts, n, 13)));
  opts.log(`crashes: ${n} kills of migrate`);
  rows.push(row('kill -9 of migrate at a random instant', await moveSeries(opts, 'migrate', n, 14)));
  opts.log(`crashes: ${n} kills of revert`);
  rows.push(row('kill -9 of revert at a random instant', await moveSeries(opts, 'revert', n, 15)));
  const rounds = opts.long ? 5 : 1;
  for (const type of SOURCE_TYPES) {
    opts.log(`crashes: ${type} interrupted at each phase boundary`);
    const signals = opts.long ? 'SIGINT, SIGTERM and SIGKILL' : 'SIGINT, SIGTERM or SIGKILL in turn';
    rows.push(row(`${type} source interrupted at each phase boundary (${PHASES.join(', ')}) by ${signals}; the next sync must equal upstream exactly`, await phaseSeries(opts, type, rounds)));
  }
  return { title: 'Crashes (kill -9)', rows, skipped: [] };
}
