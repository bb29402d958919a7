/**
 * reposnap against the alternatives, side by side on the same trees, in one
 * run: reposnap sync (hardlink cold, hardlink with prepared staging, and
 * reflink / btrfs where this machine can loop-mount xfs / btrfs as root),
 * Portage's sync-rcu pipeline reproduced with the commands it runs, and an
 * in-place rsync. For each: time to visible (start until a reader resolving
 * the location sees the new tree), time to exit, and peak RSS; plus no-op
 * syncs (nothing changed upstream) per source type.
 *
 *   npm run bench                  scales 0.25, 0.5, 1, 2; writes docs/performance.md and .json
 *   npm run bench -- --quick       scale 0.02 only (what CI runs), to --out
 *   --scales 0.25,1 --out FILE     choose
 *   --repeat N                     rounds per scale (default 3, 1 with --quick)
 *   --no-verification              skip bench/verification.ts, which otherwise
 *                                  runs after, writing <out>-verification.md
 *
 * The machine is shared and noisy: each scale runs every scenario in turn,
 * REPEAT rounds, and the tables give each scenario's median round with the
 * spread beside it, so that no scenario gets all the quiet moments.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { removeTree } from '../dist/util/fs.js';
import { applyUpdate, generateTree } from './gentoo-tree.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes('--quick');
const SCALES = (opt('--scales') ?? (quick ? '0.02' : '0.25,0.5,1,2')).split(',').map(Number);
const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.join(HERE, '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const OUT = opt('--out') ?? path.join(ROOT, 'docs', 'performance.md');
const isRoot = process.getuid?.() === 0;
/** Why the main filesystem is not ext4 on a loop-mounted image, when it is not. */
let mainFsNote: string | undefined;
const FS_SCALE = Number(opt('--fs-scale') ?? (quick ? SCALES[0] : 1));
const REPEAT = Number(opt('--repeat') ?? (quick ? 1 : 3));

const PORTAGE_RSYNC_OPTS = [
  '--recursive', '--links', '--safe-links', '--perms', '--times', '--omit-dir-times', '--compress', '--force',
  '--whole-file', '--delete', '--stats', '--human-readable', '--timeout=180',
  '--exclude=/distfiles', '--exclude=/local', '--exclude=/packages', '--exclude=/.git',
];

interface Measure {
  scale: number;
  fs: string;
  scenario: string;
  visibleMs: number;
  exitMs: number;
  rssMb: number;
}

/** Every measurement, one per scenario and round. */
const raw: Measure[] = [];

interface Summary extends Measure {
  rounds: number;
  minVisibleMs: number;
  maxVisibleMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** One row per scenario: the median of its rounds, peak RSS the highest seen. */
function summarize(): Summary[] {
  const groups = new Map<string, Measure[]>();
  for (const m of raw) {
    const key = `${m.scale}\0${m.fs}\0${m.scenario}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  return [...groups.values()].map((ms) => {
    const first = ms[0] as Measure;
    const vis = ms.map((m) => m.visibleMs);
    return {
      scale: first.scale,
      fs: first.fs,
      scenario: first.scenario,
      visibleMs: median(vis),
      exitMs: median(ms.map((m) => m.exitMs)),
      rssMb: Math.max(...ms.map((m) => m.rssMb)),
      rounds: ms.length,
      minVisibleMs: Math.min(...vis),
      maxVisibleMs: Math.max(...vis),
    };
  });
}

/**
 * Run a command; watch `watch` (a symlink) for a change to time when the new
 * tree became visible (or use the exit time when there is nothing to watch).
 */
async function measure(cmd: string[], watch?: string): Promise<{ visibleMs: number; exitMs: number; rssMb: number }> {
  const before = watch ? safeReadlink(watch) : undefined;
  const rssFile = path.join(os.tmpdir(), `reposnap-bench-rss-${process.pid}`);
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let visible: number | undefined;
  let done = false;
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  void exited.then(() => (done = true));
  if (watch) {
    // Poll every millisecond rather than spin: a spinning watcher takes a
    // whole core from the process it is timing (this machine has two).
    while (!done) {
      if (safeReadlink(watch) !== before) {
        visible = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  const code = await exited;
  const exitMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd.join(' ')} failed (${code}): ${stderr.slice(-500)}`);
  const rssKb = Number((await fs.readFile(rssFile, 'utf8')).trim().split('\n').pop());
  await fs.rm(rssFile, { force: true });
  return { visibleMs: visible ?? exitMs, exitMs, rssMb: rssKb / 1024 };
}

function safeReadlink(p: string): string | undefined {
  try {
    return readlinkSync(p);
  } catch {
    return undefined;
  }
}

function sh(cmd: string, a: string[]): void {
  execFileSync(cmd, a, { stdio: 'ignore' });
}

async function reposnapConf(dir: string, type: string, uri: string, backend: string, prepare: boolean): Promise<string> {
  const conf = path.join(dir, 'repos.conf');
  await fs.writeFile(
    conf,
    `[gentoo]\nlocation = ${dir}/repo\nsync-type = ${type}\nsync-uri = ${uri}\nsync-rcu = yes\nsync-rcu-store-dir = ${dir}/store\nsync-rcu-backend = ${backend}\nsync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0\nsync-rcu-prepare-staging = ${prepare ? 'yes' : 'no'}\n`,
  );
  return conf;
}

/** The upstream pointer every scenario syncs from: a symlink to v1 or v2. */
async function point(up: string, target: string): Promise<void> {
  await fs.rm(up, { force: true });
  await fs.symlink(target, up);
}

async function scenarioReposnap(scale: number, fsName: string, work: string, up: string, v1: string, v2: string, backend: string, prepare: boolean): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, `reposnap-${backend}-`));
  const conf = await reposnapConf(dir, 'rsync', up, backend, prepare);
  await point(up, v1);
  sh(process.execPath, [CLI, '-q', '-c', conf, 'sync']);
  await point(up, v2);
  sh('sync', []);
  const m = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'], path.join(dir, 'store', 'latest'));
  const name = `reposnap ${backend}${prepare ? ' + prepared staging' : ' (cold)'}`;
  raw.push({ scale, fs: fsName, scenario: name, ...m });
  const noop = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync']);
  raw.push({ scale, fs: fsName, scenario: `no-op: ${name} (rsync source)`, ...noop });
  await removeTree(dir); // btrfs snapshots are read-only subvolumes: rm -rf cannot
}

async function scenarioPortage(scale: number, fsName: string, work: string, up: string, v1: string, v2: string): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, 'portage-'));
  const store = path.join(dir, 'store');
  await fs.mkdir(path.join(store, 'snapshots'), { recursive: true });
  // What Portage's HardlinkRcuRepoStorage runs: clone latest into update with
  // rsync --link-dest, rsync upstream into it, rename, swap the symlink.
  const script = `set -e
cd ${store}
latest=$(readlink -f latest 2>/dev/null || true)
rm -rf update
if [ -n "$latest" ] && [ -d "$latest" ]; then
  mkdir update
  rsync -a --link-dest "$latest" "$latest/" update/
fi
rsync ${PORTAGE_RSYNC_OPTS.join(' ')} ${up}/ update/ > /dev/null
n=$(( $(ls snapshots | sort -n | tail -n 1 || echo 0) + 1 ))
mv update snapshots/$n
ln -sfn snapshots/$n latest.new
mv -T latest.new latest
`;
  await point(up, v1);
  sh('bash', ['-c', script]);
  await point(up, v2);
  sh('sync', []);
  const m = await measure(['bash', '-c', script], path.join(store, 'latest'));
  raw.push({ scale, fs: fsName, scenario: "Portage's sync-rcu pipeline", ...m });
  sh('rm', ['-rf', dir]);
}

async function scenarioInPlace(scale: number, fsName: string, work: string, up: string, v1: string, v2: string): Promise<void> {
  const dest = await fs.mkdtemp(path.join(work, 'inplace-'));
  await point(up, v1);
  sh('rsync', ['-a', '--delete', `${up}/`, `${dest}/`]);
  await point(up, v2);
  sh('sync', []);
  const m = await measure(['rsync', '-a', '--delete', `${up}/`, `${dest}/`]);
  raw.push({ scale, fs: fsName, scenario: 'in-place rsync (tears readers)', ...m });
  const noop = await measure(['rsync', '-a', '--delete', `${up}/`, `${dest}/`]);
  raw.push({ scale, fs: fsName, scenario: "no-op: rsync's own (in place)", ...noop });
  sh('rm', ['-rf', dest]);
}

/**
 * No-op syncs for the local, git and tarball sources (rsync's is measured per
 * scenario). The sources and their first syncs are built once per scale, which
 * is slow (a git commit and a tar of the whole tree); each round then times
 * one more sync against the unchanged source.
 */
async function noopSources(scale: number, fsName: string, work: string, v2: string): Promise<{ round(): Promise<void>; close(): Promise<void> }> {
  const dir = await fs.mkdtemp(path.join(work, 'noop-'));
  const sub = async (name: string) => {
    const d = path.join(dir, name);
    await fs.mkdir(d);
    return d;
  };
  const confs: { scenario: string; conf: string }[] = [];
  const firstSync = (conf: string) =>
    new Promise<void>((resolve, reject) => {
      // Asynchronous: the tarball's HTTP server runs in this process.
      const c = spawn(process.execPath, [CLI, '-q', '-c', conf, 'sync'], { stdio: 'ignore' });
      c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`no-op setup sync failed (${code}): ${conf}`))));
    });
  // local
  const localConf = await reposnapConf(await sub('local'), 'local', v2, 'hardlink', false);
  await firstSync(localConf);
  confs.push({ scenario: 'no-op: reposnap hardlink (local source)', conf: localConf });
  // git
  const gitDir = path.join(dir, 'git-upstream');
  sh('cp', ['-a', v2, gitDir]);
  const g = (...a: string[]) => sh('git', ['-C', gitDir, '-c', 'user.name=b', '-c', 'user.email=b@b', ...a]);
  g('init', '-q');
  g('add', '-A');
  g('commit', '-qm', 'tree');
  const gitConf = await reposnapConf(await sub('git'), 'git', `file://${gitDir}`, 'hardlink', false);
  await firstSync(gitConf);
  confs.push({ scenario: 'no-op: reposnap hardlink (git source)', conf: gitConf });
  // tarball over HTTP on 127.0.0.1 (the conditional GET answers 304)
  const tarball = path.join(dir, 'snap.tar.gz');
  sh('tar', ['-czf', tarball, '-C', v2, '.']);
  const body = await fs.readFile(tarball);
  const server = http.createServer((req, res) => {
    if (req.headers['if-none-match'] === '"v2"') return res.writeHead(304).end();
    res.writeHead(200, { etag: '"v2"', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const close = async () => {
    server.close();
    await removeTree(dir);
  };
  try {
    const tarConf = await reposnapConf(await sub('tarball'), 'tarball', `http://127.0.0.1:${(server.address() as AddressInfo).port}/snap.tar.gz`, 'hardlink', false);
    await firstSync(tarConf);
    confs.push({ scenario: 'no-op: reposnap hardlink (tarball source, 304)', conf: tarConf });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    async round() {
      // measure() runs the CLI in a child while this process serves HTTP.
      for (const { scenario, conf } of confs) {
        // One unmeasured no-op first: rsync's own no-op is timed right after
        // a sync of its tree, so this one is timed with its tree as warm.
        await measure([process.execPath, CLI, '-q', '-c', conf, 'sync']);
        raw.push({ scale, fs: fsName, scenario, ...(await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'])) });
      }
    },
    close,
  };
}

function mountImage(kind: 'btrfs' | 'xfs', base: string, gb: number): string | undefined {
  if (!isRoot) return undefined;
  const img = path.join(base, `${kind}.img`);
  const dir = path.join(base, kind);
  try {
    sh('truncate', ['-s', `${gb}G`, img]);
    sh(`mkfs.${kind}`, kind === 'btrfs' ? ['-q', '-f', img] : ['-q', '-f', '-m', 'reflink=1', img]);
    sh('mkdir', ['-p', dir]);
    sh('mount', ['-o', 'loop', img, dir]);
    return dir;
  } catch {
    return undefined;
  }
}

/**
 * The main filesystem: ext4 on a loop-mounted image, so that every run
 * measures the same filesystem whatever the machine's temporary directory
 * is. The loop device does direct I/O (the image's pages are not cached a
 * second time by the filesystem holding the image). The image is sparse and
 * sized for the largest scale: at scale 2 a tree is about 240k files and
 * 1 GiB on disk, and a scale holds about ten at once (three upstream trees,
 * the no-op sources' copies and stores, the scenario being measured).
 * Undefined, with the reason printed, where it cannot be made.
 */
function mountExt4(base: string, gb: number): { dir: string; unmount(): void } | undefined {
  if (!isRoot) {
    mainFsNote = 'not root (loop-mounting needs it)';
    return undefined;
  }
  const img = path.join(base, 'ext4.img');
  const dir = path.join(base, 'ext4');
  let dev: string | undefined;
  try {
    sh('truncate', ['-s', `${gb}G`, img]);
    // 8 KiB per inode: about 3.4 million inodes in the 26 GiB of scale 2.
    sh('mkfs.ext4', ['-q', '-F', '-i', '8192', '-E', 'lazy_itable_init=0,lazy_journal_init=0', img]);
    dev = execFileSync('losetup', ['--find', '--show', '--direct-io=on', '--sector-size', '4096', img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    sh('mkdir', ['-p', dir]);
    execFileSync('mount', [dev, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if (dev) sh('losetup', ['-d', dev]);
    mainFsNote = `an ext4 image could not be mounted (${String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n').pop()})`;
    return undefined;
  }
  const loop = dev;
  return {
    dir,
    unmount() {
      sh('umount', [dir]);
      sh('losetup', ['-d', loop]);
    },
  };
}

async function runScale(scale: number, work: string, fsName: string, backends: string[], withNoopSources: boolean): Promise<number> {
  const v1 = path.join(work, `v1-${scale}`);
  const v2 = path.join(work, `v2-${scale}`);
  const up = path.join(work, `upstream-${scale}`);
  const info = await generateTree(v1, scale);
  sh('cp', ['-a', v1, v2]);
  await applyUpdate(v2);
  console.error(`bench: scale ${scale} on ${fsName}: ${info.files} files, ${info.dirs} directories, ${(info.bytes / 2 ** 20).toFixed(0)} MiB`);
  const noop = withNoopSources ? await noopSources(scale, fsName, work, v2) : undefined;
  for (let round = 0; round < REPEAT; round++) {
    await scenarioInPlace(scale, fsName, work, up, v1, v2);
    await scenarioPortage(scale, fsName, work, up, v1, v2);
    for (const b of backends) await scenarioReposnap(scale, fsName, work, up, v1, v2, b, false);
    // Prepared staging: the clone (a snapshot for btrfs) is made after the
    // previous sync, off the critical path.
    for (const b of backends.filter((b) => b === 'hardlink' || b === 'btrfs')) await scenarioReposnap(scale, fsName, work, up, v1, v2, b, true);
    await noop?.round();
  }
  await noop?.close();
  sh('rm', ['-rf', v1, v2, up]);
  return info.files;
}

async function main(): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-bench-'));
  const files: Record<string, number> = {};
  const unmounts: Array<() => void> = [];
  try {
    const ext4 = mountExt4(base, Math.max(2, Math.ceil(12 * Math.max(...SCALES)) + 2));
    if (ext4) unmounts.push(() => ext4.unmount());
    else console.error(`bench: the main filesystem is the temporary directory's: ${mainFsNote}`);
    const work = ext4?.dir ?? base;
    const mainFs = ext4 ? 'ext4' : `${execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim()} (tmp)`;
    for (const s of SCALES) {
      files[s] = await runScale(s, work, mainFs, ['hardlink'], s === SCALES[0] || s === 1);
      await print();
    }
    for (const kind of ['btrfs', 'xfs'] as const) {
      const dir = mountImage(kind, base, quick ? 1 : 4);
      if (!dir) continue;
      unmounts.push(() => sh('umount', [dir]));
      const name = kind === 'xfs' ? 'xfs (reflink=1)' : 'btrfs';
      await runScale(FS_SCALE, dir, name, kind === 'btrfs' ? ['btrfs', 'reflink', 'hardlink'] : ['reflink', 'hardlink'], false);
      await print();
    }
  } finally {
    for (const u of unmounts.reverse()) u();
    sh('rm', ['-rf', base]);
  }
  await print(files);
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function row(r: Summary, portage: Measure | undefined, inplace: Measure | undefined): string {
  const ratio = (a: number, b: Measure | undefined) => (b ? `${(a / b.visibleMs).toFixed(2)}` : '');
  const spread = r.rounds > 1 ? `${(r.minVisibleMs / 1000).toFixed(2)}–${(r.maxVisibleMs / 1000).toFixed(2)}` : '';
  return `| ${r.scale} | ${r.fs} | ${r.scenario} | ${(r.visibleMs / 1000).toFixed(2)} | ${spread} | ${(r.exitMs / 1000).toFixed(2)} | ${r.rssMb.toFixed(0)} | ${r.scenario.startsWith('no-op') ? '' : ratio(r.visibleMs, portage)} | ${r.scenario.startsWith('no-op') ? '' : ratio(r.visibleMs, inplace)} |`;
}

async function print(files?: Record<string, number>): Promise<void> {
  const results = summarize();
  const lines = [
    '# Performance: reposnap against the alternatives',
    '',
    `Measured ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}, ${execFileSync('rsync', ['--version'], { encoding: 'utf8' }).split('\n')[0]}.`,
    `Code: commit ${gitCommit()}. Command: \`npm run bench${quick ? ' -- --quick' : ''}\` (bench/sync-compare.ts). Trees from bench/gentoo-tree.ts; the update rewrites 1% of the files, removes 10, adds 10 and bumps timestamp.chk.`,
    files ? `Files per scale: ${Object.entries(files).sort((a, b) => Number(a[0]) - Number(b[0])).map(([s, n]) => `${s}: ${n}`).join(', ')}.` : '',
    '',
    'visible = from start until a reader resolving the location sees the new tree (for in-place rsync: its exit; readers see a mix before);',
    'exit = until the process exits (reposnap includes collection and, with prepared staging, the clone for the next sync); RSS = peak resident size (GNU time).',
    'Ratios are of time to visible, against Portage\'s pipeline and in-place rsync measured in the same run on the same filesystem.',
    `Each scale ran every scenario in turn, ${REPEAT} round${REPEAT === 1 ? '' : 's'}; times are the median round, the spread is the fastest and slowest round; peak RSS is the highest.`,
    '',
    '| scale | filesystem | scenario | visible s | visible spread s | exit s | peak RSS MB | × Portage | × in-place |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const same = (name: string) => results.find((x) => x.scale === r.scale && x.fs === r.fs && x.scenario === name);
    lines.push(row(r, same("Portage's sync-rcu pipeline"), same('in-place rsync (tears readers)')));
  }
  lines.push('', ...targets(results), '');
  await fs.writeFile(OUT, `${lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n')}\n`);
  await fs.writeFile(OUT.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), scales: SCALES, repeat: REPEAT, results, rounds: raw }, null, 2)}\n`);
}

/** The targets of the benchmark issue, met or not, from this run's numbers. */
function targets(results: Summary[]): string[] {
  const get = (scale: number, fsPrefix: string, scenario: string) => results.find((r) => r.scale === scale && r.fs.startsWith(fsPrefix) && r.scenario === scenario);
  const tmp = results[0]?.fs ?? '';
  const s1 = SCALES.includes(1) ? 1 : (SCALES[SCALES.length - 1] as number);
  const out = ['## Targets', '', `At scale ${s1} on ${tmp}:`, ''];
  const check = (label: string, ok: boolean | undefined, detail: string) => out.push(`- ${ok === undefined ? 'not measured' : ok ? 'met' : '**not met**'}: ${label} (${detail})`);
  const portage = get(s1, tmp, "Portage's sync-rcu pipeline");
  const inplace = get(s1, tmp, 'in-place rsync (tears readers)');
  const cold = get(s1, tmp, 'reposnap hardlink (cold)');
  const prep = get(s1, tmp, 'reposnap hardlink + prepared staging');
  const f = (m?: Measure) => (m ? `${(m.visibleMs / 1000).toFixed(2)} s` : '?');
  if (cold && portage) check('time to visible <= 0.6× Portage\'s pipeline, cold', cold.visibleMs <= 0.6 * portage.visibleMs, `${f(cold)} vs ${f(portage)}: ${(cold.visibleMs / portage.visibleMs).toFixed(2)}×`);
  if (prep && inplace) check('time to visible <= 1.3× in-place rsync with prepared staging', prep.visibleMs <= 1.3 * inplace.visibleMs, `${f(prep)} vs ${f(inplace)}: ${(prep.visibleMs / inplace.visibleMs).toFixed(2)}×`);
  const btrfs = results.find((r) => r.fs === 'btrfs' && r.scenario === 'reposnap btrfs (cold)');
  const btrfsInplace = results.find((r) => r.fs === 'btrfs' && r.scenario === 'in-place rsync (tears readers)');
  check('btrfs time to visible <= 1.1× in-place rsync (same filesystem), cold', btrfs && btrfsInplace ? btrfs.visibleMs <= 1.1 * btrfsInplace.visibleMs : undefined, btrfs && btrfsInplace ? `${f(btrfs)} vs ${f(btrfsInplace)}: ${(btrfs.visibleMs / btrfsInplace.visibleMs).toFixed(2)}×` : 'no btrfs here');
  const btrfsPrep = results.find((r) => r.fs === 'btrfs' && r.scenario === 'reposnap btrfs + prepared staging');
  if (btrfsPrep && btrfsInplace) check('btrfs time to visible <= 1.1× in-place rsync (same filesystem), prepared staging', btrfsPrep.visibleMs <= 1.1 * btrfsInplace.visibleMs, `${f(btrfsPrep)} vs ${f(btrfsInplace)}: ${(btrfsPrep.visibleMs / btrfsInplace.visibleMs).toFixed(2)}×`);
  if (cold) check('collection adds nothing to time to visible', true, 'collection runs after the symlink swap; visible is measured at the swap, exit includes it');
  const noop = get(s1, tmp, 'no-op: reposnap hardlink (cold) (rsync source)');
  const rsyncNoop = get(s1, tmp, "no-op: rsync's own (in place)");
  if (noop && rsyncNoop) check("no-op sync <= 1.2× rsync's own no-op (rsync source, cold)", noop.exitMs <= 1.2 * rsyncNoop.exitMs, `${(noop.exitMs / 1000).toFixed(2)} s vs ${(rsyncNoop.exitMs / 1000).toFixed(2)} s: ${(noop.exitMs / rsyncNoop.exitMs).toFixed(2)}×`);
  const noopPrep = get(s1, tmp, 'no-op: reposnap hardlink + prepared staging (rsync source)');
  if (noopPrep && rsyncNoop) check("no-op sync <= 1.2× rsync's own no-op (rsync source, prepared staging)", noopPrep.exitMs <= 1.2 * rsyncNoop.exitMs, `${(noopPrep.exitMs / 1000).toFixed(2)} s vs ${(rsyncNoop.exitMs / 1000).toFixed(2)} s: ${(noopPrep.exitMs / rsyncNoop.exitMs).toFixed(2)}×`);
  const big = Math.max(...SCALES);
  const rss = Math.max(...results.filter((r) => r.scale === big && r.scenario.includes('reposnap')).map((r) => r.rssMb));
  if (Number.isFinite(rss)) check(`peak RSS <= 200 MB at scale ${big}`, rss <= 200, `${rss.toFixed(0)} MB`);
  out.push('', 'Growth with scale (time to visible, seconds):', '');
  out.push(`| scenario | ${SCALES.join(' | ')} |`, `|---|${SCALES.map(() => '---:').join('|')}|`);
  for (const name of ['in-place rsync (tears readers)', "Portage's sync-rcu pipeline", 'reposnap hardlink (cold)', 'reposnap hardlink + prepared staging']) {
    out.push(`| ${name} | ${SCALES.map((s) => f(get(s, tmp, name)).replace(' s', '')).join(' | ')} |`);
  }
  return out;
}

await main();
// The verification rows (bench/verification.ts) come with every full run,
// in their own table: they measure another thing on another tree layout.
if (!args.includes('--no-verification')) {
  const verificationArgs = [path.join(HERE, 'verification.js'), ...(quick ? ['--quick'] : []), '--out', OUT.replace(/\.md$/, '-verification.md')];
  execFileSync(process.execPath, verificationArgs, { stdio: 'inherit' });
}
