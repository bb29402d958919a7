/**
 * reposnap against the alternatives, side by side on the same trees, in one
 * run: reposnap sync (hardlink and, as root where the kernel has overlayfs,
 * overlayfs, with and without a prepared clone, and reflink / btrfs where
 * this machine can loop-mount xfs / btrfs as root),
 * Portage's sync-rcu pipeline reproduced with the commands it runs, and an
 * in-place rsync, all fetching from an rsync daemon on 127.0.0.1 as from a
 * mirror. For each: time to visible (start until a reader resolving the
 * location sees the new tree), time to exit, peak RSS, and what upstream
 * paid (bytes sent, full file-list passes); for a 1% and a 0.1% change; plus
 * no-op syncs (nothing changed upstream) per source type. The main
 * filesystem is ext4 on a loop-mounted image (as root), btrfs and xfs run at
 * --fs-scale.
 *
 *   npm run bench                  scales 0.25, 0.5, 1, 2; writes docs/performance.md and .json
 *   npm run bench -- --quick       scale 0.02 only (what CI runs), to --out
 *   --scales 0.25,1 --out FILE     choose
 *   --fs-scale N                   the btrfs and xfs runs' scale (default 1)
 *   --repeat N                     rounds per scale (default 3, 1 with --quick)
 *   --no-verification              skip bench/verification.ts, which otherwise
 *                                  runs after, writing <out>-verification.md
 *   --no-other-fs                  the main filesystem only (no btrfs, no xfs)
 *
 * The machine is shared and noisy: each scale runs every scenario in turn,
 * REPEAT rounds, and the tables give each scenario's median round with the
 * spread beside it, so that no scenario gets all the quiet moments.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
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
/** The main filesystem's name in the rows: "ext4", or the temporary directory's. */
let mainFs = 'ext4';
const FS_SCALE = Number(opt('--fs-scale') ?? (quick ? SCALES[0] : 1));
const REPEAT = Number(opt('--repeat') ?? (quick ? 1 : 3));
const OTHER_FS = !args.includes('--no-other-fs');
/** overlayfs runs beside hardlink on the main filesystem where it can: as root, with overlayfs in the kernel. */
const OVERLAYFS = isRoot && /\boverlay\b/.test(readFileSync('/proc/filesystems', 'utf8'));

/**
 * Whether reposnap's default settings are taken to include prepared staging
 * (sync-rcu-prepare-staging = yes: the clone for the next sync is made at the
 * end of each sync). It only decides which rows are marked "(default)" and
 * which the targets hold to; both variants are always measured.
 */
const DEFAULT_PREPARED = true;

/** The upstream changes measured: a day's work, and a few hours'. */
const CHANGES = [
  { label: '1%', fraction: 0.01 },
  { label: '0.1%', fraction: 0.001 },
] as const;
/** The change column of no-op rows: a second sync with nothing new upstream. */
const NO_CHANGE = 'none';

const INPLACE = 'in-place rsync (tears readers)';
const RSYNC_NOOP = "no-op: rsync's own (in place)";
const PORTAGE = "Portage's sync-rcu pipeline";

/** A reposnap row: its backend, whether its clone was prepared, and "(default)" on the default settings. */
function reposnapName(backend: string, prepared: boolean): string {
  return `reposnap ${backend}, ${prepared ? 'prepared clone' : 'no prepared clone'}${prepared === DEFAULT_PREPARED ? ' (default)' : ''}`;
}

/** The no-op sync of a reposnap row, from the rsync daemon. */
function rsyncNoopName(backend: string, prepared: boolean): string {
  return `no-op: ${reposnapName(backend, prepared)}, rsync source`;
}

const PORTAGE_RSYNC_OPTS = [
  '--recursive', '--links', '--safe-links', '--perms', '--times', '--omit-dir-times', '--compress', '--force',
  '--whole-file', '--delete', '--stats', '--human-readable', '--timeout=180',
  '--exclude=/distfiles', '--exclude=/local', '--exclude=/packages', '--exclude=/.git',
];

/** What upstream served during one measured command (see RsyncDaemon). */
interface Traffic {
  /** Bytes the daemon sent, which is what the client received, over all connections. */
  receivedBytes: number;
  connections: number;
  /** Connections whose file list held the whole tree. */
  fullPasses: number;
  /** Connections that ended in an error: the client stopped them early. */
  stopped: number;
}

interface Measure {
  scale: number;
  fs: string;
  /** '1%', '0.1%', or NO_CHANGE. */
  change: string;
  scenario: string;
  visibleMs: number;
  exitMs: number;
  rssMb: number;
  /** Absent for the sources that are not served by the rsync daemon. */
  upstream?: Traffic;
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
    const key = `${m.scale}\0${m.fs}\0${m.change}\0${m.scenario}`;
    groups.set(key, [...(groups.get(key) ?? []), m]);
  }
  return [...groups.values()].map((ms) => {
    const first = ms[0] as Measure;
    const vis = ms.map((m) => m.visibleMs);
    return {
      scale: first.scale,
      fs: first.fs,
      change: first.change,
      scenario: first.scenario,
      visibleMs: median(vis),
      exitMs: median(ms.map((m) => m.exitMs)),
      rssMb: Math.max(...ms.map((m) => m.rssMb)),
      rounds: ms.length,
      minVisibleMs: Math.min(...vis),
      maxVisibleMs: Math.max(...vis),
      ...(first.upstream
        ? {
            upstream: {
              receivedBytes: median(ms.map((m) => m.upstream?.receivedBytes ?? 0)),
              connections: median(ms.map((m) => m.upstream?.connections ?? 0)),
              fullPasses: median(ms.map((m) => m.upstream?.fullPasses ?? 0)),
              stopped: median(ms.map((m) => m.upstream?.stopped ?? 0)),
            },
          }
        : {}),
    };
  });
}

/**
 * Upstream as real mirrors serve it: an rsync daemon on 127.0.0.1 with one
 * read-only module whose path is a symlink to the tree being served (v1 or
 * v2). Without chroot the daemon resolves that path at each connection, so
 * pointing the symlink elsewhere switches what the next connection gets
 * (checked when it starts).
 *
 * Its log has, for each connection, "sent N bytes  received M bytes  total
 * size T": N is what the client received; T is the size of the files in
 * that connection's file list, the whole tree's for a full pass and less
 * for a list the client cut short or asked for by name (--files-from).
 */
class RsyncDaemon {
  private served: { dir: string; bytes?: number } = { dir: '' };
  private readonly sizes = new Map<string, number>();

  private constructor(
    readonly port: number,
    private readonly child: ChildProcess,
    private readonly link: string,
    private readonly log: string,
  ) {}

  /** The sync URI every rsync scenario uses. */
  get uri(): string {
    return `rsync://127.0.0.1:${this.port}/gentoo/`;
  }

  static async start(dir: string): Promise<RsyncDaemon> {
    const link = path.join(dir, 'upstream');
    const log = path.join(dir, 'rsyncd.log');
    const conf = path.join(dir, 'rsyncd.conf');
    await fs.writeFile(
      conf,
      [
        'use chroot = no',
        'reverse lookup = no',
        `log file = ${log}`,
        // As root the daemon would otherwise serve as nobody, who cannot
        // enter this run's private temporary directory.
        ...(isRoot ? ['uid = 0', 'gid = 0'] : []),
        '[gentoo]',
        `path = ${link}`,
        'read only = yes',
        '',
      ].join('\n'),
    );
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const child = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, '--address=127.0.0.1', `--port=${port}`], { stdio: 'ignore' });
      let exited = false;
      child.on('exit', () => (exited = true));
      const listening = `listening on port ${port}\n`;
      for (let waited = 0; !exited && waited < 10_000; waited += 20) {
        if ((await fs.readFile(log, 'utf8').catch(() => '')).includes(listening)) {
          const daemon = new RsyncDaemon(port, child, link, log);
          await daemon.checkSwitching(dir);
          return daemon;
        }
        await sleep(20);
      }
      await new RsyncDaemon(port, child, link, log).stop();
      // Another process may have taken the port between the probe and the daemon.
      if (attempt === 5) throw new Error(`the rsync daemon did not start: ${(await fs.readFile(log, 'utf8').catch(() => '')).slice(-500)}`);
    }
  }

  /** Repointing the module's symlink must change what the next connection lists. */
  private async checkSwitching(dir: string): Promise<void> {
    for (const name of ['a', 'b', 'a']) {
      const tree = path.join(dir, `switch-check-${name}`);
      await fs.mkdir(tree, { recursive: true });
      await fs.writeFile(path.join(tree, `only-in-${name}`), name);
      await this.point(tree);
      const listed = execFileSync('rsync', ['--list-only', this.uri], { encoding: 'utf8' });
      if (!listed.includes(`only-in-${name}`)) throw new Error(`the rsync daemon's module did not follow its symlink to ${tree}: it listed ${listed}`);
    }
  }

  /** Note the size of a tree that will be served, for telling full passes (rsync's "total size"). */
  async register(tree: string): Promise<void> {
    const sizes = execFileSync('find', [tree, '(', '-type', 'f', '-o', '-type', 'l', ')', '-printf', '%s\n'], { encoding: 'utf8', maxBuffer: 1 << 30 });
    this.sizes.set(tree, sizes.split('\n').reduce((sum, n) => sum + Number(n || 0), 0));
  }

  /** Serve `tree` from the next connection on. */
  async point(tree: string): Promise<void> {
    const next = `${this.link}.new`;
    await fs.rm(next, { force: true });
    await fs.symlink(tree, next);
    await fs.rename(next, this.link);
    this.served = { dir: tree, ...(this.sizes.has(tree) ? { bytes: this.sizes.get(tree) } : {}) };
  }

  /** Where the log ends now: what comes after belongs to the next measured command. */
  async mark(): Promise<number> {
    return (await fs.stat(this.log)).size;
  }

  /**
   * The connections logged since `from`, once each has ended: every one the
   * client made ends with a "sent" line (and, if it ended in an error, an
   * "rsync error" line after it), which the daemon may write a moment after
   * the client exited.
   */
  async traffic(from: number): Promise<Traffic> {
    let settled = false;
    for (let waited = 0; ; waited += 20) {
      const conns = await this.connections(from);
      const open = conns.filter((c) => c.sent === undefined && !c.error);
      if (open.length === 0 && settled) {
        const full = this.served.bytes;
        if (full === undefined) throw new Error(`no size noted for ${this.served.dir}`);
        return {
          receivedBytes: conns.reduce((sum, c) => sum + (c.sent ?? 0), 0),
          connections: conns.length,
          fullPasses: conns.filter((c) => c.total === full).length,
          stopped: conns.filter((c) => c.error).length,
        };
      }
      if (waited >= 10_000) throw new Error(`the rsync daemon did not log the end of ${open.length} connection(s) within 10 s`);
      // Once all have a "sent" line, look once more for error lines after it.
      settled = open.length === 0;
      await sleep(settled ? 50 : 20);
    }
  }

  private async connections(from: number): Promise<Array<{ sent?: number; total?: number; error: boolean }>> {
    const fh = await fs.open(this.log, 'r');
    let text: string;
    try {
      const size = (await fh.stat()).size;
      const buf = Buffer.alloc(size - from);
      await fh.read(buf, 0, buf.length, from);
      text = buf.toString('utf8');
    } finally {
      await fh.close();
    }
    const byPid = new Map<string, { sent?: number; total?: number; error: boolean }>();
    // Whole lines only: the daemon may be writing the last one.
    for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
      const m = /^\S+ \S+ \[(\d+)\] (.*)$/.exec(line);
      if (!m) continue;
      const [, pid, msg] = m as unknown as [string, string, string];
      if (msg.startsWith('connect from ')) byPid.set(pid, { error: false });
      const c = byPid.get(pid);
      if (!c) continue;
      const stats = /^sent (\d+) bytes\s+received \d+ bytes\s+total size (\d+)/.exec(msg);
      if (stats) {
        c.sent = Number(stats[1]);
        c.total = Number(stats[2]);
      } else if (msg.startsWith('rsync error: ')) c.error = true;
    }
    return [...byPid.values()];
  }

  /** Stop the daemon and wait for it: it logs its end, which must not land in a removed directory. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill();
    await exited;
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Run a command; watch `watch` (a symlink) for a change to time when the new
 * tree became visible (or use the exit time when there is nothing to watch).
 */
async function measure(cmd: string[], watch?: string, daemon?: RsyncDaemon): Promise<{ visibleMs: number; exitMs: number; rssMb: number; upstream?: Traffic }> {
  const before = watch ? safeReadlink(watch) : undefined;
  const logFrom = await daemon?.mark();
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
      await sleep(1);
    }
  }
  const code = await exited;
  const exitMs = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd.join(' ')} failed (${code}): ${stderr.slice(-500)}`);
  const rssKb = Number((await fs.readFile(rssFile, 'utf8')).trim().split('\n').pop());
  await fs.rm(rssFile, { force: true });
  const upstream = daemon && logFrom !== undefined ? await daemon.traffic(logFrom) : undefined;
  return { visibleMs: visible ?? exitMs, exitMs, rssMb: rssKb / 1024, ...(upstream ? { upstream } : {}) };
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

/** One scale on one filesystem and one change: its trees, and the daemon serving them. */
interface Setup {
  scale: number;
  fsName: string;
  work: string;
  daemon: RsyncDaemon;
  v1: string;
  /** v1 with the change applied. */
  v2: string;
  change: string;
}

/**
 * reposnap's rsync source: a fresh store synced to v1, then the measured
 * sync to v2 (and, with `noop`, one more with nothing new upstream).
 */
async function scenarioReposnap({ scale, fsName, work, daemon, v1, v2, change }: Setup, backend: string, prepare: boolean, noop: boolean): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, `reposnap-${backend}-`));
  const conf = await reposnapConf(dir, 'rsync', daemon.uri, backend, prepare);
  await daemon.point(v1);
  sh(process.execPath, [CLI, '-q', '-c', conf, 'sync']);
  await daemon.point(v2);
  sh('sync', []);
  const m = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'], path.join(dir, 'store', 'latest'), daemon);
  raw.push({ scale, fs: fsName, change, scenario: reposnapName(backend, prepare), ...m });
  if (noop) {
    const n = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'], undefined, daemon);
    raw.push({ scale, fs: fsName, change: NO_CHANGE, scenario: rsyncNoopName(backend, prepare), ...n });
  }
  await noteUse(work);
  await removeTree(dir); // btrfs snapshots are read-only subvolumes: rm -rf cannot
}

async function scenarioPortage({ scale, fsName, work, daemon, v1, v2, change }: Setup): Promise<void> {
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
rsync ${PORTAGE_RSYNC_OPTS.join(' ')} ${daemon.uri} update/ > /dev/null
n=$(( $(ls snapshots | sort -n | tail -n 1 || echo 0) + 1 ))
mv update snapshots/$n
ln -sfn snapshots/$n latest.new
mv -T latest.new latest
`;
  await daemon.point(v1);
  sh('bash', ['-c', script]);
  await daemon.point(v2);
  sh('sync', []);
  const m = await measure(['bash', '-c', script], path.join(store, 'latest'), daemon);
  raw.push({ scale, fs: fsName, change, scenario: PORTAGE, ...m });
  await noteUse(work);
  sh('rm', ['-rf', dir]);
}

async function scenarioInPlace({ scale, fsName, work, daemon, v1, v2, change }: Setup, noop: boolean): Promise<void> {
  const dest = await fs.mkdtemp(path.join(work, 'inplace-'));
  await daemon.point(v1);
  sh('rsync', ['-a', '--delete', daemon.uri, `${dest}/`]);
  await daemon.point(v2);
  sh('sync', []);
  const m = await measure(['rsync', '-a', '--delete', daemon.uri, `${dest}/`], undefined, daemon);
  // One connection, one full list: anything else means the daemon served
  // another tree than the one pointed at.
  if (m.upstream?.connections !== 1 || m.upstream.fullPasses !== 1) throw new Error(`in-place rsync: expected one full pass from upstream, the daemon logged ${JSON.stringify(m.upstream)}`);
  raw.push({ scale, fs: fsName, change, scenario: INPLACE, ...m });
  if (noop) {
    const n = await measure(['rsync', '-a', '--delete', daemon.uri, `${dest}/`], undefined, daemon);
    raw.push({ scale, fs: fsName, change: NO_CHANGE, scenario: RSYNC_NOOP, ...n });
  }
  await noteUse(work);
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
        raw.push({ scale, fs: fsName, change: NO_CHANGE, scenario, ...(await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'])) });
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
 * sized for the largest scale: at scale 0.25 the run had at most 1.5 GiB
 * and 310k inodes in use (the upstream trees, the no-op sources' copies and
 * stores, the scenario being measured), so about 6 GiB and 1.25 million
 * inodes per unit of scale; 12 GiB and 1.5 million inodes per unit leave
 * room. Each scale prints what it used. Undefined, with the reason kept,
 * where it cannot be made.
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
    // 8 KiB per inode: about 3.4 million inodes in the 26 GiB for scale 2.
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

/** The most space and inodes seen in use on a filesystem (sampled before each scenario's cleanup). */
const peakUse = new Map<string, { bytes: number; inodes: number }>();

async function noteUse(work: string): Promise<void> {
  const st = await fs.statfs(work);
  const seen = peakUse.get(work) ?? { bytes: 0, inodes: 0 };
  peakUse.set(work, { bytes: Math.max(seen.bytes, (st.blocks - st.bfree) * st.bsize), inodes: Math.max(seen.inodes, st.files - st.ffree) });
}

/** What one scale's trees were: files, and how many each change rewrote. */
interface ScaleInfo {
  files: number;
  rewritten: Record<string, number>;
}

/**
 * One scale on one filesystem: v1, and v1 with each change applied; REPEAT
 * rounds of every scenario, the changes in turn within a round. The backends
 * run without a prepared clone (`cold`) and with one (`prepared`; the clone
 * is a snapshot for btrfs). The no-ops run after the first change's syncs.
 */
async function runScale(scale: number, work: string, fsName: string, daemon: RsyncDaemon, changes: ReadonlyArray<(typeof CHANGES)[number]>, backends: { cold: string[]; prepared: string[] }, withNoopSources: boolean): Promise<ScaleInfo> {
  const v1 = path.join(work, `v1-${scale}`);
  const info = await generateTree(v1, scale);
  await daemon.register(v1);
  const setups: Setup[] = [];
  const rewritten: Record<string, number> = {};
  for (const [i, c] of changes.entries()) {
    const v2 = path.join(work, `v2-${scale}-${i}`);
    sh('cp', ['-a', v1, v2]);
    rewritten[c.label] = (await applyUpdate(v2, 2, c.fraction)).changed;
    await daemon.register(v2);
    setups.push({ scale, fsName, work, daemon, v1, v2, change: c.label });
  }
  console.error(`bench: scale ${scale} on ${fsName}: ${info.files} files, ${info.dirs} directories, ${(info.bytes / 2 ** 20).toFixed(0)} MiB; rewritten: ${Object.entries(rewritten).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  const first = setups[0] as Setup;
  const noop = withNoopSources ? await noopSources(scale, fsName, work, first.v2) : undefined;
  for (let round = 0; round < REPEAT; round++) {
    for (const setup of setups) {
      const withNoop = setup === first;
      await scenarioInPlace(setup, withNoop);
      await scenarioPortage(setup);
      for (const b of backends.cold) await scenarioReposnap(setup, b, false, withNoop);
      for (const b of backends.prepared) await scenarioReposnap(setup, b, true, withNoop);
    }
    await noop?.round();
  }
  await noop?.close();
  const use = peakUse.get(work);
  const st = await fs.statfs(work);
  if (use) console.error(`bench: scale ${scale} on ${fsName}: at most ${(use.bytes / 2 ** 30).toFixed(2)} of ${((st.blocks * st.bsize) / 2 ** 30).toFixed(1)} GiB and ${use.inodes} of ${st.files} inodes in use`);
  peakUse.delete(work);
  sh('rm', ['-rf', v1, ...setups.map((x) => x.v2)]);
  return { files: info.files, rewritten };
}

async function main(): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-bench-'));
  const scales: Record<string, ScaleInfo> = {};
  const unmounts: Array<() => void> = [];
  let daemon: RsyncDaemon | undefined;
  try {
    daemon = await RsyncDaemon.start(base);
    const ext4 = mountExt4(base, Math.max(2, Math.ceil(12 * Math.max(...SCALES)) + 2));
    if (ext4) unmounts.push(() => ext4.unmount());
    else console.error(`bench: the main filesystem is the temporary directory's: ${mainFsNote}`);
    const work = ext4?.dir ?? base;
    mainFs = ext4 ? 'ext4' : `${execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim()} (tmp)`;
    const mainBackends = ['hardlink', ...(OVERLAYFS && ext4 ? ['overlayfs'] : [])];
    for (const s of SCALES) {
      scales[s] = await runScale(s, work, mainFs, daemon, CHANGES, { cold: mainBackends, prepared: mainBackends }, s === SCALES[0] || s === 1);
      await print();
    }
    // The other filesystems: the first change only, each backend that works there.
    for (const kind of (['btrfs', 'xfs'] as const).filter(() => OTHER_FS)) {
      const dir = mountImage(kind, base, quick ? 1 : 4);
      if (!dir) continue;
      unmounts.push(() => sh('umount', [dir]));
      const name = kind === 'xfs' ? 'xfs (reflink=1)' : 'btrfs';
      const backends = kind === 'btrfs' ? { cold: ['btrfs', 'reflink', 'hardlink'], prepared: ['btrfs', 'hardlink'] } : { cold: ['reflink', 'hardlink'], prepared: ['reflink', 'hardlink'] };
      await runScale(FS_SCALE, dir, name, daemon, CHANGES.slice(0, 1), backends, false);
      await print();
    }
  } finally {
    await daemon?.stop();
    for (const u of unmounts.reverse()) u();
    sh('rm', ['-rf', base]);
  }
  await print(scales);
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const secs = (ms: number) => (ms / 1000).toFixed(2);

function row(r: Summary, portage: Measure | undefined, inplace: Measure | undefined): string {
  const noop = r.change === NO_CHANGE;
  const ratio = (b: Measure | undefined) => (b && !noop ? (r.visibleMs / b.visibleMs).toFixed(2) : '');
  const spread = r.rounds > 1 ? `${secs(r.minVisibleMs)}–${secs(r.maxVisibleMs)}` : '';
  const up = r.upstream;
  const traffic = up ? `${(up.receivedBytes / 1024).toFixed(0)} | ${up.fullPasses} | ${up.connections}${up.stopped ? ` (${up.stopped} stopped)` : ''}` : ' |  | ';
  return `| ${r.scale} | ${r.fs} | ${r.change} | ${r.scenario} | ${secs(r.visibleMs)} | ${spread} | ${secs(r.exitMs)} | ${r.rssMb.toFixed(0)} | ${traffic} | ${ratio(portage)} | ${ratio(inplace)} |`;
}

/** The command that reproduces this run (where the output went is not part of it). */
function command(): string {
  const shown = args.filter((a, i) => a !== '--out' && args[i - 1] !== '--out');
  return `npm run bench${shown.length ? ` -- ${shown.join(' ')}` : ''}`;
}

async function print(scales?: Record<string, ScaleInfo>): Promise<void> {
  // Per scale and filesystem, in the order run: the changes, then the no-ops.
  const order = (r: Measure) => (r.change === NO_CHANGE ? CHANGES.length : CHANGES.findIndex((c) => c.label === r.change));
  const blocks: string[] = [];
  const block = (r: Measure) => {
    const key = `${r.scale}\0${r.fs}`;
    if (!blocks.includes(key)) blocks.push(key);
    return blocks.indexOf(key);
  };
  const results = summarize().sort((a, b) => block(a) - block(b) || order(a) - order(b));
  const fsScale = results.some((r) => r.fs !== mainFs) ? `; btrfs and xfs (mkfs.xfs -m reflink=1) on loop-mounted images of their own, at scale ${FS_SCALE}, the 1% change only` : '';
  const perScale = scales
    ? Object.entries(scales)
        .sort((a, b) => Number(a[0]) - Number(b[0]))
        .map(([s, i]) => `${s}: ${i.files} files (${Object.entries(i.rewritten).map(([c, n]) => `${c}: ${n} rewritten`).join(', ')})`)
        .join('; ')
    : '';
  const lines = [
    '# Performance: reposnap against the alternatives',
    '',
    `Measured ${new Date().toISOString()} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}, ${execFileSync('rsync', ['--version'], { encoding: 'utf8' }).split('\n')[0]}.`,
    `Code: commit ${gitCommit()}. Command: \`${command()}\` (bench/sync-compare.ts).`,
    '',
    '## What was measured',
    '',
    `- Filesystem: ${mainFs === 'ext4' ? 'ext4 on a loop-mounted image (mkfs.ext4 -i 8192; the loop device does direct I/O, so the image is not cached twice)' : `${mainFs}, the temporary directory's own filesystem, because ${mainFsNote ?? 'ext4 could not be used'}`}, for every scale${fsScale}. Upstream's trees, stores and destinations are all on the filesystem of their row.`,
    '- Upstream: an rsync daemon (`rsync --daemon`, `use chroot = no`) on 127.0.0.1 at a free port, with one read-only module whose path is a symlink pointed at the old or the new tree (checked to switch at start). In-place rsync, Portage\'s pipeline and reposnap\'s rsync source all sync from `rsync://127.0.0.1:PORT/gentoo/`, as from a mirror; Portage\'s pipeline passes Portage\'s own rsync options (`--compress` among them), the others do not compress. The no-ops of the local, git (file://) and tarball (HTTP on 127.0.0.1) sources do not use the daemon.',
    `- Trees from bench/gentoo-tree.ts. Changes (column "change"): "1%" rewrites 1% of the files, removes 10, adds 10 and bumps metadata/timestamp.chk; "0.1%" the same with 0.1% rewritten; "${NO_CHANGE}" is a no-op, a sync right after the 1% one with nothing new upstream. The 0.1% change runs in-place rsync, Portage's pipeline and reposnap ${OVERLAYFS ? 'hardlink and overlayfs' : 'hardlink'} with and without a prepared clone, on ${mainFs} only.${perScale ? ` Per scale: ${perScale}.` : ''}`,
    '- Each scenario starts from a fresh destination synced to the old tree (not timed), then `sync`, then the timed sync to the new tree.',
    `- reposnap "prepared clone": sync-rcu-prepare-staging = yes, the clone this sync writes into was made at the end of the previous sync (the sync after a previous one); "no prepared clone": = no, the sync clones the current snapshot itself (as the first change after a fresh store). "(default)" marks ${DEFAULT_PREPARED ? 'prepared staging' : 'no prepared staging'} as reposnap's default settings (DEFAULT_PREPARED in bench/sync-compare.ts).`,
    '- visible = from start until a reader resolving the location sees the new tree (for in-place rsync: its exit; readers see a mix before). exit = until the process exits (reposnap includes collection and, with a prepared clone, making the clone for the next sync). RSS = peak resident size of the command and its children (GNU time); the daemon is not among them.',
    '- received KiB, full list passes, connections: from the daemon\'s log, whose lines between the start and the end of the timed command belong to it. rsyncd logs one "sent N bytes  received M bytes  total size T" per connection: N, the daemon\'s sent bytes, is what the client received (summed over connections); T is the size of the files in that connection\'s file list, so a connection whose T is the whole tree\'s size made upstream walk and send the full list (a full list pass), and one asking for named files (--files-from) or stopped early made a partial one. "stopped" connections ended in an rsync error at the daemon because the client went away (reposnap\'s precheck stops at the first change); their bytes are counted.',
    `- Ratios are of time to visible, against Portage's pipeline and in-place rsync of the same change, measured in the same run on the same filesystem. Each scale ran every scenario in turn, ${REPEAT} round${REPEAT === 1 ? '' : 's'}; times and upstream figures are the median round, the spread is the fastest and slowest round; peak RSS is the highest.`,
    '',
    '## Results',
    '',
    '| scale | filesystem | change | scenario | visible s | visible spread s | exit s | peak RSS MB | received KiB | full list passes | connections | × Portage | × in-place |',
    '|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const same = (name: string) => results.find((x) => x.scale === r.scale && x.fs === r.fs && x.change === r.change && x.scenario === name);
    lines.push(row(r, same(PORTAGE), same(INPLACE)));
  }
  lines.push('', ...targets(results), '');
  await fs.mkdir(path.dirname(OUT), { recursive: true });
  await fs.writeFile(OUT, `${lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n')}\n`);
  await fs.writeFile(OUT.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), scales: SCALES, fsScale: FS_SCALE, repeat: REPEAT, defaultPrepared: DEFAULT_PREPARED, mainFs, ...(mainFsNote ? { mainFsNote } : {}), perScale: scales, results, rounds: raw }, null, 2)}\n`);
}

/** The targets of issue 18 ("Plan, then apply"), met or not, from this run's numbers. */
function targets(results: Summary[]): string[] {
  const get = (scale: number, fsName: string, change: string, scenario: string) => results.find((r) => r.scale === scale && r.fs === fsName && r.change === change && r.scenario === scenario);
  const out = ['## Targets', ''];
  const check = (label: string, a: number | undefined, b: number | undefined, limit: number) => {
    if (a === undefined || b === undefined) return out.push(`- not measured: ${label}`);
    const ratio = a / b;
    // Two decimals, or three where two would show the limit itself.
    const shown = ratio.toFixed(Math.abs(ratio - limit) < 0.005 ? 3 : 2);
    return out.push(`- ${ratio <= limit ? 'met' : '**not met**'}: ${label} (${secs(a)} s vs ${secs(b)} s: ${shown}×)`);
  };
  const dflt = reposnapName('hardlink', DEFAULT_PREPARED);
  const cold = reposnapName('hardlink', false);
  const wanted = SCALES.filter((s) => s === 1 || s === 2);
  const at = wanted.length ? wanted : [Math.max(...SCALES)];
  out.push(
    `Ratios of this run, each against the alternative measured in the same rounds on the same filesystem. Default settings: ${DEFAULT_PREPARED ? 'a prepared clone' : 'no prepared clone'} (DEFAULT_PREPARED in bench/sync-compare.ts).${wanted.length ? '' : ` Scales 1 and 2 were not in this run: scale ${at[0]} stands in.`}`,
  );
  for (const s of at) {
    out.push('', `At scale ${s} on ${mainFs}:`, '');
    for (const { label: c } of CHANGES) {
      const inplace = get(s, mainFs, c, INPLACE);
      check(`default settings, the sync after a previous one, ${c} change: time to visible <= 1.0× in-place rsync`, get(s, mainFs, c, dflt)?.visibleMs, inplace?.visibleMs, 1.0);
      check(`no prepared clone (first change after a fresh store), ${c} change: time to visible <= 1.6× in-place rsync`, get(s, mainFs, c, cold)?.visibleMs, inplace?.visibleMs, 1.6);
      check(`default settings, ${c} change: exit (including collection${DEFAULT_PREPARED ? ' and preparing the next clone' : ''}) <= 2.0× in-place rsync`, get(s, mainFs, c, dflt)?.exitMs, inplace?.exitMs, 2.0);
    }
    check("default settings, no-op: <= 1.0× rsync's own no-op", get(s, mainFs, NO_CHANGE, rsyncNoopName('hardlink', DEFAULT_PREPARED))?.exitMs, get(s, mainFs, NO_CHANGE, RSYNC_NOOP)?.exitMs, 1.0);
  }
  const overlay = reposnapName('overlayfs', DEFAULT_PREPARED);
  if (results.some((r) => r.scenario === overlay)) {
    out.push('', `overlayfs on ${mainFs} (opening staging is one mount, so a prepared clone saves little; the cost is in reading through the layers, docs/performance-overlayfs.md):`, '');
    for (const s of at) {
      for (const { label: c } of CHANGES) {
        const inplace = get(s, mainFs, c, INPLACE)?.visibleMs;
        for (const name of [overlay, reposnapName('overlayfs', !DEFAULT_PREPARED)]) {
          const v = get(s, mainFs, c, name)?.visibleMs;
          const h = get(s, mainFs, c, name.replace('overlayfs', 'hardlink'))?.visibleMs;
          if (v === undefined || inplace === undefined) continue;
          out.push(`- scale ${s}, ${c} change, ${name.replace('reposnap overlayfs, ', '')}: time to visible ${secs(v)} s, ${(v / inplace).toFixed(2)}× in-place rsync${h !== undefined ? `, ${(v / h).toFixed(2)}× reposnap hardlink the same way` : ''}`);
        }
      }
    }
  }
  if (!results.some((r) => r.fs !== mainFs)) return growth(out, results, get, cold);
  out.push('', `Other filesystems, at scale ${FS_SCALE}, 1% change:`, '');
  const onFs = (fsName: string, scenario: string) => get(FS_SCALE, fsName, '1%', scenario)?.visibleMs;
  check(`btrfs, btrfs backend, ${DEFAULT_PREPARED ? 'prepared clone' : 'no prepared clone'}: time to visible <= 1.0× in-place rsync on btrfs`, onFs('btrfs', reposnapName('btrfs', DEFAULT_PREPARED)), onFs('btrfs', INPLACE), 1.0);
  check(`xfs, reflink backend, ${DEFAULT_PREPARED ? 'prepared clone' : 'no prepared clone'}: time to visible <= 1.2× in-place rsync on xfs`, onFs('xfs (reflink=1)', reposnapName('reflink', DEFAULT_PREPARED)), onFs('xfs (reflink=1)', INPLACE), 1.2);
  return growth(out, results, get, cold);
}

/** Peak RSS, and how each scenario grows from the smallest scale to the largest. */
function growth(out: string[], results: Summary[], get: (scale: number, fsName: string, change: string, scenario: string) => Summary | undefined, cold: string): string[] {
  const big = Math.max(...SCALES);
  const rss = Math.max(...results.filter((r) => r.scale === big && r.fs === mainFs && r.scenario.includes('reposnap')).map((r) => r.rssMb));
  const rssLabel = `peak RSS of reposnap at scale ${big}, any scenario on ${mainFs}: <= 200 MB`;
  out.push('', Number.isFinite(rss) ? `- ${rss <= 200 ? 'met' : '**not met**'}: ${rssLabel} (${rss.toFixed(0)} MB)` : `- not measured: ${rssLabel}`);
  // How each grows from the smallest scale to the largest.
  const lo = Math.min(...SCALES);
  out.push('', `Growth from scale ${lo} to ${big} on ${mainFs} (time to visible; exit for the no-ops; seconds):`, '');
  out.push(`| change | scenario | ${SCALES.join(' | ')} | × ${big} / ${lo} |`, `|---|---|${SCALES.map(() => '---:|').join('')}---:|`);
  const rows: Array<[string, string]> = [];
  const overlays = OVERLAYFS ? [reposnapName('overlayfs', false), reposnapName('overlayfs', true)] : [];
  for (const { label: c } of CHANGES) for (const name of [INPLACE, PORTAGE, cold, reposnapName('hardlink', true), ...overlays]) rows.push([c, name]);
  rows.push([NO_CHANGE, RSYNC_NOOP], [NO_CHANGE, rsyncNoopName('hardlink', DEFAULT_PREPARED)]);
  for (const [c, name] of rows) {
    const v = (s: number) => get(s, mainFs, c, name)?.visibleMs;
    const [a, b] = [v(lo), v(big)];
    out.push(`| ${c} | ${name} | ${SCALES.map((s) => (v(s) === undefined ? '' : secs(v(s) as number))).join(' | ')} | ${a && b ? (b / a).toFixed(1) : ''} |`);
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
