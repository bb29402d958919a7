/**
 * The torture suite: tries hard to break reposnap's guarantees and reports
 * figures for each attempt in docs/reliability.md (and .json beside it).
 *
 *   npm run torture                  the quick version (what CI runs), to docs/reliability.md
 *   npm run torture -- --long        hundreds of kills and versions per case
 *   --only crashes,faults            run some cases
 *   --out FILE                       write the report elsewhere
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
];

async function main(): Promise<number> {
  const work = defaultWork();
  const opts: CaseOptions = { long, work, log: (m) => console.error(`torture: ${m}`) };
  const reports: Array<CaseReport & { id: string; seconds: number }> = [];
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
      reports.push({ id, seconds: (performance.now() - t) / 1000, ...report });
      await write(reports, (performance.now() - t0) / 1000);
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
  const failures = reports.flatMap((r) => r.rows.filter((row) => !row.baseline && row.bad > 0).map((row) => `${r.title}: ${row.what}: ${row.outcome}`));
  for (const f of failures) console.error(`torture: FAILED ${f}`);
  console.error(`torture: ${failures.length === 0 ? 'nothing lost' : `${failures.length} failures`}; report in ${OUT}`);
  return failures.length === 0 ? 0 : 1;
}

async function write(reports: Array<CaseReport & { id: string; seconds: number }>, seconds: number): Promise<void> {
  const commit = (() => {
    try {
      return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const tried = reports.reduce((n, r) => n + r.rows.reduce((m, row) => m + row.tried, 0), 0);
  const bad = reports.reduce((n, r) => n + r.rows.filter((row) => !row.baseline).reduce((m, row) => m + row.bad, 0), 0);
  const lines = [
    '# Reliability: what the torture suite tried and what was lost',
    '',
    `Run ${new Date().toISOString()} (${long ? 'long' : 'quick'} version, ${seconds.toFixed(0)} s) on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Linux ${os.release()}, Node ${process.version}, as ${isRoot ? 'root' : 'a normal user'}.`,
    `Code: commit ${commit}. Command: \`npm run torture${long ? ' -- --long' : ''}\` (torture/run.ts; one file per case in torture/).`,
    '',
    'Every row drives the real CLI in separate processes against real filesystems. "Bad" counts failures of the guarantee',
    '(torn or lost reads, a location that is not a whole committed tree, a wrong exit, a stack trace, something touched that',
    'must not be, leftovers); rows marked baseline show unprotected behaviour for contrast and do not count.',
    '',
    `In all: ${tried} attempts, ${bad} bad.`,
    '',
  ];
  for (const r of reports) {
    lines.push(`## ${r.title}`, '', `${r.seconds.toFixed(0)} s.`, '', '| what was tried | times | what happened | bad |', '|---|---:|---|---:|');
    for (const row of r.rows) lines.push(`| ${esc(row.what)} | ${row.tried} | ${esc(row.outcome)} | ${row.baseline ? `${row.bad} (baseline)` : row.bad} |`);
    for (const s of r.skipped) lines.push('', `Skipped: ${s}`);
    lines.push('');
  }
  await fs.mkdir(path.dirname(OUT), { recursive: true });
  await fs.writeFile(OUT, `${lines.join('\n')}\n`);
  await fs.writeFile(OUT.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), long, commit, cases: reports }, null, 2)}\n`);
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

process.exitCode = await main();
