/**
 * The torture suite: tries hard to break reposnap's guarantees and reports
 * figures for each attempt in docs/reliability.md (and .json beside it).
 *
 *   npm run torture                  the quick version (what CI runs), to docs/reliability.md
 *   npm run torture -- --long        hundreds of kills and versions per case
 *   --only crashes,faults            run some cases
 *   --out FILE                       write the report elsewhere
 *   --render                         rewrite the markdown from the JSON beside it
 *   --merge                          with --only: replace those cases in the existing
 *                                    report (each case names the commit it ran on)
 *
 * Exits 1 when any guarantee failed (a non-baseline row with bad > 0).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { badConfig } from './bad-config.js';
import { concurrency } from './concurrency.js';
import { crashes } from './crashes.js';
import { faults } from './faults.js';
import { hostileRaces } from './hostile-races.js';
import { hostileSources } from './hostile-sources.js';
import { defaultWork, isRoot, ROOT, type CaseOptions, type CaseReport } from './lib.js';
import { permissions } from './permissions.js';
import { tornReads } from './torn-reads.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const long = args.includes('--long');
const merge = args.includes('--merge');
const only = opt('--only')?.split(',');
const OUT = opt('--out') ?? path.join(ROOT, 'docs', 'reliability.md');

const CASES: Array<[string, (o: CaseOptions) => Promise<CaseReport>]> = [
  ['torn-reads', tornReads],
  ['crashes', crashes],
  ['concurrency', concurrency],
  ['faults', faults],
  ['bad-config', badConfig],
  ['hostile-sources', hostileSources],
  ['permissions', permissions],
  ['hostile-races', hostileRaces],
];

async function main(): Promise<number> {
  if (args.includes('--render')) {
    // Write the markdown again from the JSON (after the findings table changed).
    const saved = JSON.parse(await fs.readFile(OUT.replace(/\.md$/, '.json'), 'utf8')) as RunMeta & { cases: CaseRun[] };
    await write(saved.cases, { ...saved, seconds: saved.seconds ?? saved.cases.reduce((n, c) => n + c.seconds, 0) });
    return 0;
  }
  const started = { date: new Date().toISOString(), long, commit: headCommit() };
  // --merge: the earlier report's cases stay, but those run now, in order.
  const earlier = merge ? (JSON.parse(await fs.readFile(OUT.replace(/\.md$/, '.json'), 'utf8')) as RunMeta & { cases: CaseRun[] }) : undefined;
  const base = earlier ? { date: earlier.date, long: earlier.long, commit: earlier.commit } : started;
  const previousSeconds = earlier ? earlier.cases.filter((c) => !only?.includes(c.id)).reduce((n, c) => n + c.seconds, 0) : 0;
  const merged = (now: CaseRun[]): CaseRun[] => {
    if (!earlier) return now;
    const byId = new Map(now.map((c) => [c.id, c]));
    const out = earlier.cases.map((c) => byId.get(c.id) ?? { ...c, commit: c.commit ?? earlier.commit, long: c.long ?? earlier.long });
    for (const c of now) if (!earlier.cases.some((e) => e.id === c.id)) out.push(c);
    return out;
  };
  const work = defaultWork();
  const opts: CaseOptions = { long, work, log: (m) => console.error(`torture: ${m}`) };
  const reports: CaseRun[] = [];
  const t0 = performance.now();
  try {
    for (const [id, fn] of CASES) {
      if (only && !only.includes(id)) continue;
      const t = performance.now();
      let report: CaseReport;
      try {
        report = await fn(opts);
      } catch (err) {
        // A case that crashes is itself a finding: report it, go on.
        report = { title: id, rows: [{ what: 'the case itself', tried: 1, outcome: `crashed: ${String((err as Error).stack ?? err).split('\n').slice(0, 3).join(' | ')}`, bad: 1 }], skipped: [] };
      }
      reports.push({ id, seconds: (performance.now() - t) / 1000, commit: started.commit, long, ...report });
      await write(merged(reports), { ...base, seconds: (performance.now() - t0) / 1000 + previousSeconds });
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
  const failures = reports.flatMap((r) => r.rows.filter((row) => !row.baseline && row.bad > 0).map((row) => `${r.title}: ${row.what}: ${row.outcome}`));
  for (const f of failures) console.error(`torture: FAILED ${f}`);
  console.error(`torture: ${failures.length === 0 ? 'nothing lost' : `${failures.length} failures`}; report in ${OUT}`);
  return failures.length === 0 ? 0 : 1;
}

/**
 * What the suite found while it was being written, and what became of it.
 * Kept here so every report carries it; a new finding is added when found.
 */
const FINDINGS = [
  ['kill -9 during commit left `.last-id.reposnap-tmp-*` (an atomic write not yet renamed), and during the backend probe `.probe-*`, in the store; nothing removed them', 'fixed: collection removes temporaries whose writer pid is gone; probes use the same temporary names'],
  ['the out-of-inodes store: the failed sync kept its staging for resume, which held the inodes, so every later sync failed too (3 of 3)', 'fixed: a fill that fails for lack of space or inodes discards its staging'],
  ['an unknown sync-user was reported without file and line, after staging had been created (1 of 36 bad configurations)', 'fixed: checked before anything is touched, reported at its line, exit 2'],
  ['upstream 0666 files and 0777 directories were published as they were: nobody could write into every snapshot (and, through hardlinks, older ones)', 'fixed: snapshot entries never get group or other write permission (local and rsync sources; tar and git already applied the umask)'],
  ['the rsync source skipped FIFOs and devices silently (--no-D), committing a tree without them', 'fixed: refused, as the local source does'],
  ['an uncompressed archive cut short at an entry boundary was committed as a smaller tree', 'fixed: the end-of-archive marker is required'],
  ['the git source wrote names that are not UTF-8 as U+FFFD when applying a difference (the first checkout was right)', 'fixed: paths stay bytes'],
  ['the long run: a revert killed between its exchange and its clean-up left `.<location>.reposnap-old` beside the location, and the revert run again did not remove it (1 of 100)', 'fixed after that run: revert removes it before the store'],
  ['the long run: after one of 100 kills of sync at a random instant, the next sync failed (its message was not recorded then; the suite records them now). Likely cause: a killed sync\'s `cp` clone ran on as an orphan, holding no lock, in a staging tree the next sync deleted', 'fixed after that run: cp (like rsync) gets a parent-death signal; verified by a long rerun of the crash case after the fixes, docs/reliability-crashes.md'],
  ['a path longer than PATH_MAX (500 nested directories) is refused by the local source (ENAMETOOLONG) and by rsync (exit 23)', 'open, by choice: refused cleanly with the previous snapshot current; supporting it would need every walk to work relative to directory descriptors'],
  ['readers that resolve the location without a lease are protected only by spare snapshots and the TTL; with both at 0 a collection can remove a tree under them', 'by design: readers who need a snapshot to stay take a lease (`reposnap exec`, Repository.withLease)'],
  ['(reported) an update interrupted after its fill, during sync-verify-command or the seal, was resumed, found nothing left to do, discarded as unchanged and reported "up to date" while the location kept what upstream had deleted; git resumed a tree heading for C2 by applying C1 -> C3; a git fill killed mid-apply left a temporary the next commit published', 'fixed: the resume contract (the staging record says what the tree holds); the crash case now interrupts every source at every phase boundary and requires the next sync to equal upstream exactly'],
  ['(reported) as root, the local source copied by path what it had looked at with lstat: a user swapping entries for symlinks got root-only files published as theirs', 'fixed: a tree someone else controls is read through descriptors (O_NOFOLLOW, fstat); the hostile-races case counts it'],
  ['(reported) sync-user kept ownership of staging folders and of the files it made, so it could rewrite published snapshots', 'fixed: everything is given back to the store owner (files copied into new inodes) before verification and commit; the hostile-races case counts it'],
];

function headCommit(): string {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** One case as run: how long, on which commit, quick or long. */
type CaseRun = CaseReport & { id: string; seconds: number; commit?: string; long?: boolean };

/** Who ran, when, on what code: the code is the commit the run started on. */
interface RunMeta {
  date: string;
  long: boolean;
  commit: string;
  seconds: number;
}

async function write(reports: CaseRun[], meta: RunMeta): Promise<void> {
  const { commit, seconds } = meta;
  const tried = reports.reduce((n, r) => n + r.rows.reduce((m, row) => m + row.tried, 0), 0);
  const bad = reports.reduce((n, r) => n + r.rows.filter((row) => !row.baseline).reduce((m, row) => m + row.bad, 0), 0);
  const lines = [
    '# Reliability: what the torture suite tried and what was lost',
    '',
    `Run ${meta.date} (${meta.long ? 'long' : 'quick'} version, ${seconds.toFixed(0)} s) on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Linux ${os.release()}, Node ${process.version}, as ${isRoot ? 'root' : 'a normal user'}.`,
    `Code: commit ${commit}. Command: \`npm run torture${meta.long ? ' -- --long' : ''}\` (torture/run.ts; one file per case in torture/).`,
    '',
    'Every row drives the real CLI in separate processes against real filesystems. "Bad" counts failures of the guarantee',
    '(torn or lost reads, a location that is not a whole committed tree, a wrong exit, a stack trace, something touched that',
    'must not be, leftovers); rows marked baseline show unprotected behaviour for contrast and do not count.',
    '',
    `In all: ${tried} attempts, ${bad} bad.`,
    '',
  ];
  lines.push('## What the suite found', '', '| finding | what became of it |', '|---|---|');
  for (const [what, fate] of FINDINGS) lines.push(`| ${esc(what as string)} | ${esc(fate as string)} |`);
  lines.push('');
  for (const r of reports) {
    const later = r.commit !== undefined && r.commit !== commit ? ` Run later, on commit ${r.commit} (${r.long ? 'long' : 'quick'} version).` : '';
    lines.push(`## ${r.title}`, '', `${r.seconds.toFixed(0)} s.${later}`, '', '| what was tried | times | what happened | bad |', '|---|---:|---|---:|');
    for (const row of r.rows) lines.push(`| ${esc(row.what)} | ${row.tried} | ${esc(row.outcome)} | ${row.baseline ? `${row.bad} (baseline)` : row.bad} |`);
    for (const s of r.skipped) lines.push('', `Skipped: ${s}`);
    lines.push('');
  }
  await fs.mkdir(path.dirname(OUT), { recursive: true });
  await fs.writeFile(OUT, `${lines.join('\n')}\n`);
  await fs.writeFile(OUT.replace(/\.md$/, '.json'), `${JSON.stringify({ ...meta, cases: reports }, null, 2)}\n`);
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

process.exitCode = await main();
