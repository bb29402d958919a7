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
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readlinkSync } from 'node:fs';
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
const FS_SCALE = Number(opt('--fs-scale') ?? (quick ? SCALES[0] : 1));
const REPEAT = Number(opt('--repeat') ?? (quick ? 1 : 3));

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
      child.kill();
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

  stop(): void {
    this.child.kill();
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

/** One scale on one filesystem: its trees, and the daemon serving them. */
interface Setup {
  scale: number;
  fsName: string;
  work: string;
  daemon: RsyncDaemon;
  v1: string;
  v2: string;
}

async function scenarioReposnap({ scale, fsName, work, daemon, v1, v2 }: Setup, backend: string, prepare: boolean): Promise<void> {
  const dir = await fs.mkdtemp(path.join(work, `reposnap-${backend}-`));
  const conf = await reposnapConf(dir, 'rsync', daemon.uri, backend, prepare);
  await daemon.point(v1);
  sh(process.execPath, [CLI, '-q', '-c', conf, 'sync']);
  await daemon.point(v2);
  sh('sync', []);
  const m = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'], path.join(dir, 'store', 'latest'), daemon);
  const name = `reposnap ${backend}${prepare ? ' + prepared staging' : ' (cold)'}`;
  raw.push({ scale, fs: fsName, scenario: name, ...m });
  const noop = await measure([process.execPath, CLI, '-q', '-c', conf, 'sync'], undefined, daemon);
  raw.push({ scale, fs: fsName, scenario: `no-op: ${name} (rsync source)`, ...noop });
  await removeTree(dir); // btrfs snapshots are read-only subvolumes: rm -rf cannot
}

async function scenarioPortage({ scale, fsName, work, daemon, v1, v2 }: Setup): Promise<void> {
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
  raw.push({ scale, fs: fsName, scenario: "Portage's sync-rcu pipeline", ...m });
  sh('rm', ['-rf', dir]);
}

async function scenarioInPlace({ scale, fsName, work, daemon, v1, v2 }: Setup): Promise<void> {
  const dest = await fs.mkdtemp(path.join(work, 'inplace-'));
  await daemon.point(v1);
  sh('rsync', ['-a', '--delete', daemon.uri, `${dest}/`]);
  await daemon.point(v2);
  sh('sync', []);
  const m = await measure(['rsync', '-a', '--delete', daemon.uri, `${dest}/`], undefined, daemon);
  // One connection, one full list: anything else means the daemon served
  // another tree than the one pointed at.
  if (m.upstream?.connections !== 1 || m.upstream.fullPasses !== 1) throw new Error(`in-place rsync: expected one full pass from upstream, the daemon logged ${JSON.stringify(m.upstream)}`);
  raw.push({ scale, fs: fsName, scenario: 'in-place rsync (tears readers)', ...m });
  const noop = await measure(['rsync', '-a', '--delete', daemon.uri, `${dest}/`], undefined, daemon);
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

async function runScale(scale: number, work: string, fsName: string, daemon: RsyncDaemon, backends: string[], withNoopSources: boolean): Promise<number> {
  const v1 = path.join(work, `v1-${scale}`);
  const v2 = path.join(work, `v2-${scale}`);
  const info = await generateTree(v1, scale);
  sh('cp', ['-a', v1, v2]);
  await applyUpdate(v2);
  for (const tree of [v1, v2]) await daemon.register(tree);
  console.error(`bench: scale ${scale} on ${fsName}: ${info.files} files, ${info.dirs} directories, ${(info.bytes / 2 ** 20).toFixed(0)} MiB`);
  const setup: Setup = { scale, fsName, work, daemon, v1, v2 };
  const noop = withNoopSources ? await noopSources(scale, fsName, work, v2) : undefined;
  for (let round = 0; round < REPEAT; round++) {
    await scenarioInPlace(setup);
    await scenarioPortage(setup);
    for (const b of backends) await scenarioReposnap(setup, b, false);
    // Prepared staging: the clone (a snapshot for btrfs) is made after the
    // previous sync, off the critical path.
    for (const b of backends.filter((b) => b === 'hardlink' || b === 'btrfs')) await scenarioReposnap(setup, b, true);
    await noop?.round();
  }
  await noop?.close();
  sh('rm', ['-rf', v1, v2]);
  return info.files;
}

async function main(): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-bench-'));
  const files: Record<string, number> = {};
  const unmounts: Array<() => void> = [];
  const daemon = await RsyncDaemon.start(base);
  try {
    const ext4 = mountExt4(base, Math.max(2, Math.ceil(12 * Math.max(...SCALES)) + 2));
    if (ext4) unmounts.push(() => ext4.unmount());
    else console.error(`bench: the main filesystem is the temporary directory's: ${mainFsNote}`);
    const work = ext4?.dir ?? base;
    const mainFs = ext4 ? 'ext4' : `${execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim()} (tmp)`;
    for (const s of SCALES) {
      files[s] = await runScale(s, work, mainFs, daemon, ['hardlink'], s === SCALES[0] || s === 1);
      await print();
    }
    for (const kind of ['btrfs', 'xfs'] as const) {
      const dir = mountImage(kind, base, quick ? 1 : 4);
      if (!dir) continue;
      unmounts.push(() => sh('umount', [dir]));
      const name = kind === 'xfs' ? 'xfs (reflink=1)' : 'btrfs';
      await runScale(FS_SCALE, dir, name, daemon, kind === 'btrfs' ? ['btrfs', 'reflink', 'hardlink'] : ['reflink', 'hardlink'], false);
      await print();
    }
  } finally {
    daemon.stop();
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
  const up = r.upstream;
  const traffic = up ? `${(up.receivedBytes / 1024).toFixed(0)} | ${up.fullPasses} | ${up.connections}${up.stopped ? ` (${up.stopped} stopped)` : ''}` : ' |  | ';
  return `| ${r.scale} | ${r.fs} | ${r.scenario} | ${(r.visibleMs / 1000).toFixed(2)} | ${spread} | ${(r.exitMs / 1000).toFixed(2)} | ${r.rssMb.toFixed(0)} | ${traffic} | ${r.scenario.startsWith('no-op') ? '' : ratio(r.visibleMs, portage)} | ${r.scenario.startsWith('no-op') ? '' : ratio(r.visibleMs, inplace)} |`;
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
    '| scale | filesystem | scenario | visible s | visible spread s | exit s | peak RSS MB | received KiB | full list passes | connections | × Portage | × in-place |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
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
