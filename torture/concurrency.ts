/**
 * 3. Concurrency. Rounds of many processes at once on two repos of one
 * configuration: waiting syncs, --no-wait syncs, syncs of both repos, gc and
 * leased readers, while upstream keeps changing. Every exit must be 0, or 75
 * for a --no-wait that found the repo busy; snapshot ids must be unique;
 * after the last round each repo must equal its upstream.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { Repos } from '../dist/index.js';
import { cli, random, readVersions, repoSection, startCli, treeDigest, writeConf, writeVersion, workDir, type CaseOptions, type CaseReport, type RunResult } from './lib.js';

const FILES = 600;

export async function concurrency(opts: CaseOptions): Promise<CaseReport> {
  const rounds = opts.long ? 60 : 6;
  const rnd = random(31);
  const dir = await workDir(opts.work, 'concurrency');
  const names = ['a', 'b'];
  const dirs = Object.fromEntries(names.map((n) => [n, path.join(dir, n)]));
  let text = '';
  for (const n of names) {
    await writeVersion(path.join(dirs[n] as string, 'upstream'), FILES, 1);
    text += repoSection(n, dirs[n] as string, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0');
  }
  const conf = await writeConf(dir, text);
  const repos = Repos.load({ path: conf });
  const first = await cli(['-q', '-c', conf, 'sync', 'a', 'b']);
  if (first.code !== 0) throw new Error(`concurrency: first sync failed: ${first.stderr}`);

  let processes = 0;
  let wrongExit = 0;
  let busy = 0;
  let stackTraces = 0;
  const ids = new Map<string, number[]>(names.map((n) => [n, []]));
  let readerPasses = 0;
  let tornReads = 0;
  const wrongExits: string[] = [];

  for (let round = 0; round < rounds; round++) {
    for (const n of names) await writeVersion(path.join(dirs[n] as string, 'upstream'), FILES, round + 2);
    const jobs: Array<{ args: string[]; noWait: boolean }> = [];
    const kinds = [
      () => ({ args: ['sync', '--json', 'a'], noWait: false }),
      () => ({ args: ['sync', '--json', '--no-wait', 'a'], noWait: true }),
      () => ({ args: ['sync', '--json', 'a', 'b'], noWait: false }),
      () => ({ args: ['sync', '--json', '--no-wait', 'b'], noWait: true }),
      () => ({ args: ['gc', 'a', 'b'], noWait: false }),
    ];
    for (let j = 0; j < 8; j++) jobs.push((kinds[rnd(kinds.length)] as () => { args: string[]; noWait: boolean })());
    let running = true;
    const readers = names.map(async (n) => {
      while (running) {
        const r = await repos.get(n).withLease((l) => readVersions(l.path));
        readerPasses++;
        if (r.versions.size !== 1 || r.vanished > 0 || r.garbled > 0) tornReads++;
      }
    });
    const results: Array<[{ args: string[]; noWait: boolean }, RunResult]> = await Promise.all(
      jobs.map(async (job) => [job, await startCli(['-c', conf, ...job.args]).done] as [typeof job, RunResult]),
    );
    running = false;
    await Promise.all(readers);
    for (const [job, r] of results) {
      processes++;
      if (/\n\s+at /.test(r.stderr)) stackTraces++;
      if (job.args[0] === 'sync' && r.stdout.trim()) {
        const report = JSON.parse(r.stdout) as { results: Array<{ repo: string; snapshot?: { id: number } | null; outcome?: string }> };
        for (const rep of report.results) if (rep.outcome === 'updated' && rep.snapshot) ids.get(rep.repo)?.push(rep.snapshot.id);
      }
      if (r.code === 75 && job.noWait) busy++;
      else if (r.code !== 0) {
        wrongExit++;
        wrongExits.push(`${job.args.join(' ')} -> ${r.code}: ${r.stderr.trim().split('\n')[0]}`);
      }
    }
  }
  // The last word: one plain sync, then each location must equal its upstream.
  const last = await cli(['-q', '-c', conf, 'sync', 'a', 'b']);
  let wrongContent = last.code === 0 ? 0 : 1;
  for (const n of names) {
    const d = dirs[n] as string;
    if ((await treeDigest(path.join(d, 'upstream'))) !== (await treeDigest(await fs.realpath(path.join(d, 'repo'))))) wrongContent++;
  }
  let duplicates = 0;
  for (const list of ids.values()) duplicates += list.length - new Set(list).size;
  const committed = [...ids.values()].reduce((a, l) => a + l.length, 0);
  await fs.rm(dir, { recursive: true, force: true });
  return {
    title: 'Concurrency',
    rows: [
      {
        what: `${rounds} rounds of 8 processes at once (waiting and --no-wait syncs of one or both of two repos, gc), two leased readers per repo`,
        tried: processes,
        outcome: `${processes - wrongExit - busy} exited 0, ${busy} exited 75 (--no-wait, busy), ${wrongExit} other exits${wrongExits.length ? ` (${wrongExits.slice(0, 2).join('; ')})` : ''}; ${stackTraces} stack traces`,
        bad: wrongExit + stackTraces,
      },
      { what: 'snapshot ids handed out by the committing syncs', tried: committed, outcome: `${duplicates} duplicates`, bad: duplicates },
      { what: 'leased reads during the rounds', tried: readerPasses, outcome: `${tornReads} torn, vanished or partial`, bad: tornReads },
      { what: 'final content equals upstream (both repos)', tried: names.length, outcome: `${wrongContent} differ`, bad: wrongContent },
    ],
    skipped: [],
  };
}
