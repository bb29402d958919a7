/**
 * The `rsync` source: the real rsync, in two steps, plan then apply.
 *
 * - Plan: rsync --dry-run from upstream against the current snapshot, which
 *   it only reads, to the end: what differs, item by item (rsync-plan.ts).
 *   A no-op sync stops here, having cost what rsync's own no-op costs. The
 *   precheck starts the plan and returns at its first change, while the
 *   dry run goes on: the pipeline opens staging (a prepared clone, or a
 *   clone made now beside the plan, which it only reads).
 * - Apply: rsync with --files-from the plan's paths only, not a second walk
 *   of the whole tree, into the staging clone, in parts while the plan is
 *   still growing (deletions, and folder times, wait for the last part);
 *   over a remote shell, where each part would be a login, once.
 *   --ignore-times makes it write every listed file anew (to a temporary
 *   name, renamed into place) rather than set a mode, owner or time on the
 *   old inode: in a hardlinked clone that inode is also a published
 *   snapshot's. rsync can only change a symlink's attributes in place, so
 *   every listed symlink that is shared gets an inode of its own first
 *   (tree/unshare.ts). Deletions are listed too and done by
 *   --delete-missing-args.
 *
 * Without a plan from the precheck (a resumed staging tree, a fill run as
 * sync-user, a quarantine) a target that shares inodes is planned against
 * itself first; a target that shares none (an empty start, btrfs, reflink,
 * an in-place location) gets one plain `rsync -a --delete`.
 *
 * Progress: the items found (plan), then the items done, the bytes of the
 * files written, and for an apply both against the plan's totals (see
 * Counter).
 *
 * rsync never writes into an existing file (--inplace and --append are
 * refused by configuration). Devices and specials are not transferred
 * (`--no-D`): nothing from upstream should create device nodes in a tree
 * that root reads. Upstream may change between plan and apply (a live
 * mirror; a single rsync run is not atomic either): the apply's items are
 * compared with the plan's, and a difference is reported as a warning.
 */
import { ConfigError, ReposnapError } from '../errors.js';
import { shellSplit } from '../util/shlex.js';
import type { SourceKind } from './kind.js';
import { refusedRsyncOptions, withoutDeletions } from './rsync-options.js';
import { countChanges, ITEM_FORMAT, parseLine, RsyncPlan, RsyncStats, type ExitStatus, type Item } from './rsync-plan.js';
import { runProcess, type ProcessHandle } from '../util/process.js';
import { failpoint } from '../util/failpoint.js';
import { abortSignal } from '../util/abort.js';
import { FS_CONCURRENCY, mapLimit } from '../util/limit.js';
import { bjoin } from '../tree/bytes.js';
import { readAhead } from '../tree/read-ahead.js';
import { unshareSymlink } from '../tree/unshare.js';
import { emptyChanges, requireSourceDir, type FillContext, type PrecheckContext, type PrecheckResult, type PreviewContext, type SourceProgress, type SourceResult, type SyncSource } from './source.js';
import type { TreeChange } from '../tree/diff.js';
import { isRoot } from '../util/identity.js';

export const RSYNC_EXIT_MEANINGS: Record<number, string> = {
  1: 'syntax or usage error',
  2: 'protocol incompatibility',
  3: 'errors selecting input/output files or directories',
  4: 'requested action not supported',
  5: 'error starting client-server protocol',
  6: 'daemon unable to append to log file',
  10: 'error in socket I/O',
  11: 'error in file I/O',
  12: 'error in rsync protocol data stream',
  13: 'errors with program diagnostics',
  14: 'error in IPC code',
  20: 'received SIGUSR1 or SIGINT',
  21: 'some error returned by waitpid()',
  22: 'error allocating core memory buffers',
  23: 'partial transfer due to error (some files could not be read or written)',
  24: 'partial transfer due to vanished source files',
  25: 'the --max-delete limit stopped deletions',
  30: 'timeout in data send/receive',
  35: 'timeout waiting for daemon connection',
};

export interface RsyncConfig {
  type: 'rsync';
  /** sync-rsync-extra-opts, split into words and allow-listed (rsync-options.ts). */
  extraOpts: string[];
}

export const rsyncKind: SourceKind<RsyncConfig> = {
  type: 'rsync',
  keys: ['sync-rsync-extra-opts'],
  parse(r) {
    const raw = r.get('sync-rsync-extra-opts');
    if (raw === undefined) return { type: 'rsync', extraOpts: [] };
    let extraOpts: string[];
    try {
      extraOpts = shellSplit(raw);
    } catch (err) {
      throw new ConfigError(r.at('sync-rsync-extra-opts'), `cannot split into words: ${(err as Error).message}`);
    }
    const refused = refusedRsyncOptions(extraOpts);
    if (refused) throw new ConfigError(r.at('sync-rsync-extra-opts'), refused);
    return { type: 'rsync', extraOpts };
  },
  create: (uri, c) => new RsyncSource(uri, { extraOpts: c.extraOpts }),
};

export interface RsyncSourceOptions {
  extraOpts?: string[];
  /** The rsync binary (default: rsync from PATH). */
  rsync?: string;
}

export class RsyncSource implements SyncSource {
  readonly type = 'rsync' as const;
  constructor(
    readonly uri: string,
    private readonly opts: RsyncSourceOptions = {},
  ) {}

  /** The source argument for rsync, with the trailing slash that means "contents of". */
  private sourceArg(): { arg: string; local?: string; remoteShell?: string } {
    const uri = this.uri;
    if (uri.startsWith('ssh://')) {
      const u = new URL(uri);
      const host = u.username ? `${decodeURIComponent(u.username)}@${u.hostname}` : u.hostname;
      const shell = u.port ? `ssh -p ${u.port}` : 'ssh';
      return { arg: `${host}:${withSlash(decodeURIComponent(u.pathname))}`, remoteShell: shell };
    }
    if (uri.startsWith('rsync://')) return { arg: withSlash(uri) };
    // rsync itself reads file:// as a host named "file" where it reads a
    // list of paths (--files-from): it is a path on this machine.
    if (uri.startsWith('file://')) {
      const local = decodeURIComponent(new URL(uri).pathname);
      return { arg: withSlash(local), local };
    }
    if (uri.startsWith('/')) return { arg: withSlash(uri), local: uri };
    return { arg: withSlash(uri) }; // host:path
  }

  /**
   * The arguments that make `target` equal to upstream: all of it ("full"),
   * what a dry run says would change ("plan"), or the paths of a plan fed
   * on stdin ("apply"), or the top folder's own attributes ("top"). The user's options (allow-listed, see
   * rsync-options.ts) come after the defaults they may change (the timeout)
   * and before reposnap's own, so that where rsync lets the last one win,
   * ours do.
   */
  private args(target: string, excludeTop: readonly string[], mode: 'full' | 'plan' | 'apply' | 'top'): string[] {
    const src = this.sourceArg();
    const args: string[] = [];
    if (src.local === undefined) args.push('--timeout=180');
    const extra = this.opts.extraOpts ?? [];
    // A daemon connection is a few small request-and-answer exchanges at its
    // start and end, which Nagle's algorithm meeting delayed ACKs stalls for
    // 40 ms each on Linux: a one-file transfer from a daemon on 127.0.0.1
    // took 0.16-0.20 s with it and 0.07 s without. A sync makes two or three
    // connections. The user's own --sockopts wins.
    if (this.uri.startsWith('rsync://') && !extra.some((o) => o === '--sockopts' || o.startsWith('--sockopts='))) args.push('--sockopts=TCP_NODELAY');
    // The apply writes every listed file anew (--ignore-times, see the top
    // of this file): with rsync's delta transfer both ends would checksum
    // each one, mostly small and often unchanged in content, to send little
    // less. Whole files, as Portage's own rsync options ask; a user's
    // --no-whole-file comes after and wins.
    if (mode === 'apply') args.push('--whole-file');
    args.push(
      ...(mode === 'apply' || mode === 'top' ? withoutDeletions(extra) : extra),
      '-a',
      // Names are read back from the output: escaped, never raw bytes.
      '--no-8-bit-output',
      '--no-D',
      // Snapshots are never writable by group or others, and a fill that is
      // not root's makes no set-id files (see SNAPSHOT_MODE_BITS).
      isRoot ? '--chmod=go-w' : '--chmod=go-w,ug-s',
      ITEM_FORMAT,
      '--stats',
      '--no-human-readable',
      ...excludeTop.map((n) => `--exclude=/${n}`),
    );
    if (mode === 'apply') args.push('--files-from=-', '--from0', '--no-recursive', '--ignore-times', '--delete-missing-args', '--force');
    else if (mode === 'top') args.push('--no-recursive', '--dirs', '--exclude=*');
    else args.push('--delete');
    // Line-buffered output, so that the first change is seen as rsync finds it.
    if (mode === 'plan') args.push('--dry-run', '--outbuf=L');
    if (src.remoteShell) args.push('-e', src.remoteShell);
    args.push(src.arg, withSlash(target));
    return args;
  }

  private get bin(): string {
    return this.opts.rsync ?? 'rsync';
  }

  /**
   * The plan against the current snapshot (see the top of this file),
   * returned at its first change while the dry run goes on: the pipeline
   * opens staging meanwhile, and the fill applies the plan as it grows. A
   * failure to reach upstream before any change fails the sync now, as the
   * fill would; any other trouble counts as a change without a plan, for
   * the fill to meet again and report.
   */
  async precheck(ctx: PrecheckContext): Promise<PrecheckResult> {
    if (ctx.current === undefined) return { unchanged: false };
    await this.requireLocalSource(ctx.repo);
    const plan = this.startPlan(ctx.repo, ctx.current, [], ctx.lockFds, listeners(ctx));
    await plan.whenChanged();
    if (!plan.complete) return { unchanged: false, plan };
    const { status, stderr } = await plan.ended();
    if (status.code === 0) return plan.changed || plan.special !== undefined ? { unchanged: false, plan } : { unchanged: true };
    if (status.code !== null && UNREACHABLE.has(status.code)) throw rsyncFailed(ctx.repo, status, stderr);
    return { unchanged: false };
  }

  /** The plan against the current tree, as changes (sync --dry-run). */
  async preview(ctx: PreviewContext): Promise<TreeChange[]> {
    await this.requireLocalSource(ctx.repo);
    const plan = await this.wholePlan(ctx.repo, ctx.current, [], []);
    if (plan.special !== undefined) throw refusedSpecial(ctx.repo, plan.special);
    return plan.asChanges();
  }

  /**
   * Start a dry run from upstream against `base`: the plan grows as rsync
   * finds items, and is complete when it ends (see RsyncPlan). Its progress
   * is the changes found so far.
   */
  private startPlan(repo: string, base: string, excludeTop: readonly string[], fds: number[], on: Listeners = {}): RsyncPlan {
    const plan = RsyncPlan.growing(base, excludeTop);
    // The dry run lstats every file of `base`: on a cold cache, one disk
    // read after another, unless its inodes are read ahead beside it.
    const ahead = readAhead(base);
    const found = new Counter(on.onProgress);
    const tool = on.onToolOutput ? { onToolOutput: (line: string) => on.onToolOutput?.('rsync --dry-run', line) } : {};
    const run = spawnRsync(this.bin, this.args(base, excludeTop, 'plan'), repo, { fds, ...tool, onSpawn: (h) => plan.stopWith(() => h.stop('SIGTERM')) }, (line) => {
      const item = parseLine(line);
      if (item === undefined) plan.stats.read(line);
      else if (item.kind === 'special') plan.special ??= item.path;
      else {
        if (item.kind !== 'dir-time') found.change(item);
        plan.add(item);
      }
    });
    // The plan ends once no walker is left: whoever waits for it (a sync
    // that is done, failed or stopped) leaves nothing running.
    run.then(
      async (end) => {
        await ahead.stop();
        found.finish();
        plan.finish(end);
      },
      async (err: unknown) => {
        await ahead.stop();
        plan.abandon(err);
      },
    );
    return plan;
  }

  /** A dry run from upstream against `base`, to the end; a failure of rsync is the sync's. */
  private async wholePlan(repo: string, base: string, excludeTop: readonly string[], fds: number[], on: Listeners = {}): Promise<RsyncPlan> {
    const plan = this.startPlan(repo, base, excludeTop, fds, on);
    const { status, stderr } = await plan.ended();
    if (status.code !== 0) throw rsyncFailed(repo, status, stderr);
    return plan;
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    await this.requireLocalSource(ctx.repo);
    let plan = ctx.plan instanceof RsyncPlan && sameNames(ctx.plan.excludeTop, ctx.excludeTop) ? ctx.plan : undefined;
    if (plan === undefined && ctx.sharesInodes) plan = await this.wholePlan(ctx.repo, ctx.target, ctx.excludeTop, ctx.lockFds ?? [], listeners(ctx));
    if (plan === undefined) {
      await ctx.beginWriting();
      return await this.runFull(ctx);
    }
    // A complete plan can be refused or found empty before anything is written.
    if (plan.complete && plan.special !== undefined) throw refusedSpecial(ctx.repo, plan.special);
    if (plan.complete && !plan.changed) return { changed: false, changes: emptyChanges(), tree: plan.tree() };
    await ctx.beginWriting();
    return await this.apply(ctx, plan);
  }

  /** One rsync over the whole tree, for a target that shares no inodes. */
  private async runFull(ctx: FillContext): Promise<SourceResult> {
    const done = new Counter(ctx.onProgress, { writes: true });
    // rsync cannot be stopped halfway from here: the failpoint is reached
    // when it has written everything, before the fill reports back (the
    // record still says "partial").
    const run = await runItemized(this.bin, this.args(ctx.target, ctx.excludeTop, 'full'), ctx.repo, { fds: ctx.lockFds ?? [], ...toolOutput(ctx) }, (item) => {
      if (item.kind === 'dir-time') done.scan();
      else done.change(item);
    });
    done.finish();
    const changed = done.changed > 0;
    if (changed) await failpoint('fill-midway');
    if (run.status.code !== 0) throw rsyncFailed(ctx.repo, run.status, run.stderr);
    if (run.special !== undefined) throw refusedSpecial(ctx.repo, run.special);
    return { changed, changes: { ...countChanges(run.items), bytesTransferred: run.stats.transferred }, tree: { files: run.stats.files, bytes: run.stats.bytes } };
  }

  /**
   * rsync the plan's paths only into the target (see the top of this file).
   *
   * A plan still growing is applied in parts while its dry run goes on:
   * whenever at least applyBatch() paths wait and no apply runs, the next
   * takes them all (not over a remote shell, where each part would be a
   * login: there the plan is applied once it is complete). The last apply,
   * once the plan is complete, takes what is left, every deletion and the
   * folders again (RsyncPlan.lastApply); a plan complete from the start is
   * that one apply. A dry run that fails part way (upstream files vanished
   * on a live mirror) leaves the rest to a plan of the target against
   * itself, as after an interrupted sync.
   */
  private async apply(ctx: FillContext, first: RsyncPlan): Promise<SourceResult> {
    const top = Buffer.from(ctx.target);
    const done = new Counter(ctx.onProgress, { writes: true });
    const applied: Item[] = [];
    let transferred = 0;
    const applyList = async ({ list, unshare }: { list: Buffer; unshare: Buffer[] }): Promise<Item[]> => {
      if (list.length === 0) return [];
      // A child started after an abort is not stopped (util/abort.ts): start none.
      abortSignal()?.throwIfAborted();
      // Every listed path that exists, not only those planned as symlinks: if
      // upstream turned a file back into the same symlink meanwhile, the apply
      // would set that symlink's attributes in place.
      await mapLimit(unshare, FS_CONCURRENCY, async (p) => {
        await unshareSymlink(bjoin(top, p));
      });
      const run = await runItemized(this.bin, this.args(ctx.target, ctx.excludeTop, 'apply'), ctx.repo, { fds: ctx.lockFds ?? [], input: list, ...toolOutput(ctx) }, (item) => done.change(item));
      if (run.items.length > 0) await failpoint('fill-midway');
      if (run.status.code !== 0) throw rsyncFailed(ctx.repo, run.status, run.stderr);
      if (run.special !== undefined) throw refusedSpecial(ctx.repo, run.special);
      applied.push(...run.items);
      transferred += run.stats.transferred;
      ctx.onWritten?.(writtenFiles(run.items));
      return run.items;
    };

    let plan = first;
    let from = 0;
    const listed = new Set<string>();
    try {
      // Over a remote shell every part is a login of its own: one apply, after the dry run.
      const batch = this.overRemoteShell() ? Infinity : applyBatch();
      for (;;) {
        await plan.whenGrown(from + batch);
        if (plan.complete) break;
        const part = plan.items.slice(from);
        from += part.length;
        await applyList(RsyncPlan.partApply(part, listed));
      }
    } finally {
      // An apply failed: the dry run's answer no longer matters.
      await plan.stop();
    }
    let drift = 0;
    // What the report counts: the plan's items, or after a failed dry run those applied and the second plan's.
    let counted = first.items;
    const { status, stderr } = await plan.ended();
    if (status.code !== 0) {
      // Only a dry run that rsync ended itself is finished by a plan of the
      // target: one stopped because the sync is being aborted, or killed,
      // fails the sync here, before a second plan starts (a child started
      // after the abort is not stopped).
      abortSignal()?.throwIfAborted();
      if (status.code === null || UNREACHABLE.has(status.code)) throw rsyncFailed(ctx.repo, status, stderr);
      drift += plan.drift(applied, from);
      const before = first.items.slice(0, from);
      plan = await this.wholePlan(ctx.repo, ctx.target, ctx.excludeTop, ctx.lockFds ?? [], listeners(ctx));
      from = 0;
      listed.clear();
      counted = [...before, ...plan.items];
    }
    if (plan.special !== undefined) throw refusedSpecial(ctx.repo, plan.special);
    // The whole plan is known: the progress gets its totals, entries and bytes.
    done.setTotals(plan.lastApply(0, new Set()).count, plan.bytesToWrite());
    const last = await applyList(plan.lastApply(from, listed));
    done.finish();
    // The top's own attributes, after everything in it changed (see RsyncPlan.filesFrom).
    if (plan.topChanged) {
      abortSignal()?.throwIfAborted();
      const topRun = await spawnRsync(this.bin, this.args(ctx.target, ctx.excludeTop, 'top'), ctx.repo, { fds: ctx.lockFds ?? [], ...toolOutput(ctx) }, () => undefined);
      if (topRun.status.code !== 0) throw rsyncFailed(ctx.repo, topRun.status, topRun.stderr);
    }
    drift += plan === first ? plan.drift(applied) : plan.drift(last);
    return {
      changed: true,
      changes: { ...countChanges(counted), bytesTransferred: transferred },
      tree: plan.tree(),
      ...(drift > 0
        ? { warnings: [`repo ${ctx.repo}: upstream changed while syncing (${drift} ${drift === 1 ? 'entry' : 'entries'} differed between the plan and the transfer); the next sync brings the rest`] }
        : {}),
    };
  }

  /**
   * Whether rsync reaches upstream through a remote shell (ssh:// or
   * host:path, where rsync runs ssh), not a daemon (rsync://, host::module)
   * or this machine: each rsync run is then an ssh connection, a key
   * exchange and a login (a prompt, where the user types a password).
   */
  private overRemoteShell(): boolean {
    const { arg, local, remoteShell } = this.sourceArg();
    return remoteShell !== undefined || (local === undefined && rsyncTransport(arg) === 'shell');
  }

  /** A source on this machine must be a readable directory (a clear error otherwise). */
  private async requireLocalSource(repo: string): Promise<void> {
    const local = this.sourceArg().local;
    if (local !== undefined) await requireSourceDir(repo, local);
  }
}

type Listeners = Pick<FillContext, 'onProgress' | 'onToolOutput'>;

function listeners(ctx: Listeners): Listeners {
  return { ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}), ...(ctx.onToolOutput ? { onToolOutput: ctx.onToolOutput } : {}) };
}

/** rsync's lines for the context's listener, if it has one. */
function toolOutput(ctx: Listeners): { onToolOutput?: (line: string) => void } {
  const listener = ctx.onToolOutput;
  return listener ? { onToolOutput: (line: string) => listener('rsync', line) } : {};
}

/**
 * Items as progress: entries gone through, those changed, of them folders
 * (files and folders as status counts them), and for a run that writes
 * (not a plan) the bytes of the files written so far: every 200 items, at
 * least every tenth of a second while items come, and at the end.
 *
 * rsync prints a file's line as it begins writing it (see ITEM_FORMAT), and
 * writes one file at a time: a file's bytes count once the next file's
 * line comes, or at the end. So the bytes move file by file, and a single
 * large file adds its length only when done.
 */
class Counter {
  scanned = 0;
  changed = 0;
  private folders = 0;
  private bytes: number | undefined;
  /** The length of the file rsync is writing now. */
  private writing = 0;
  private lastFlush = Date.now();
  private readonly extra: Pick<SourceProgress, 'total' | 'totalBytes'>;
  constructor(
    private readonly onProgress: ((p: SourceProgress) => void) | undefined,
    { writes = false, ...extra }: { writes?: boolean } & Pick<SourceProgress, 'total' | 'totalBytes'> = {},
  ) {
    this.extra = extra;
    if (writes) this.bytes = 0;
  }

  /** The totals to show against, once known (a plan that was still growing is complete). */
  setTotals(total: number, totalBytes: number): void {
    this.extra.total = total;
    this.extra.totalBytes = totalBytes;
  }

  scan(): void {
    this.scanned++;
    if (this.scanned % 200 === 0 || Date.now() - this.lastFlush >= 100) this.flush();
  }

  change(item: Item): void {
    this.changed++;
    if (item.type === 'd') this.folders++;
    // Content written: a new file, or one received anew (never a file whose attributes alone were set).
    if (this.bytes !== undefined && item.type === 'f' && (item.kind === 'added' || item.kind === 'updated')) {
      this.bytes += this.writing;
      this.writing = item.size ?? 0;
    }
    this.scan();
  }

  /** rsync ended: the file it wrote last is written, and everything is said. */
  finish(): void {
    if (this.bytes !== undefined) this.bytes += this.writing;
    this.writing = 0;
    this.flush();
  }

  flush(): void {
    this.lastFlush = Date.now();
    this.onProgress?.({ scanned: this.scanned, changed: this.changed, folders: this.folders, ...this.extra, ...(this.bytes !== undefined ? { bytes: this.bytes } : {}) });
  }
}

/** The files an apply wrote (received anew, not only given attributes), now in place. */
function writtenFiles(items: readonly Item[]): string[] {
  return items.filter((i) => i.type === 'f' && (i.kind === 'added' || i.kind === 'updated')).map((i) => i.path.toString('utf8'));
}

/**
 * How many paths of a growing plan wait before an apply starts on them
 * (see RsyncSource.apply): few enough that the applies keep up with the
 * dry run, enough that the cost of each rsync connection is shared.
 * REPOSNAP_APPLY_BATCH overrides it.
 */
function applyBatch(): number {
  const n = Number(process.env.REPOSNAP_APPLY_BATCH);
  return Number.isInteger(n) && n >= 1 ? n : 100;
}

/**
 * How rsync reaches the source `arg`, read as rsync reads it: `rsync://`
 * (in any case) or `[user@]host::module` is a daemon; `[user@]host:path`,
 * the host possibly a bracketed IPv6 address, a remote shell; anything
 * else, including a path whose first colon comes after a slash, this
 * machine. Exported for its tests.
 */
export function rsyncTransport(arg: string): 'daemon' | 'shell' | 'local' {
  if (/^rsync:\/\//i.test(arg)) return 'daemon';
  let host = 0;
  for (let i = 0; i < arg.length; i++) {
    const c = arg[i];
    if (c === '@') host = i + 1;
    else if (c === '[' && i === host) {
      const end = arg.indexOf(']', i);
      if (end < 0) return 'local';
      i = end;
    } else if (c === '/') return 'local';
    else if (c === ':') {
      if (i === host) return 'local';
      return arg[i + 1] === ':' ? 'daemon' : 'shell';
    }
  }
  return 'local';
}

/** Exits that mean upstream could not be reached or spoken to: a fill would fail the same way. */
const UNREACHABLE = new Set([5, 10, 12, 30, 35]);

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function refusedSpecial(repo: string, file: string): ReposnapError {
  return new ReposnapError('EUNSAFE', `repo ${repo}: refusing special file (device, FIFO or socket) ${file}`);
}

interface RsyncRunOptions {
  fds?: number[];
  input?: Buffer;
  onToolOutput?: (line: string) => void;
  onSpawn?: (handle: ProcessHandle) => void;
}

/**
 * Run rsync (dying with us: TERM, so that it removes its temporary file),
 * under LC_ALL=C (names escaped the same way whatever the locale), handing
 * each line of its output to `onLine`; resolves with its exit and the tail
 * of its complaints. `fds` are passed on (lock descriptors); `input` is its
 * stdin (a --files-from list); `onToolOutput` sees every line it prints.
 */
async function spawnRsync(
  bin: string,
  args: string[],
  repo: string,
  opts: RsyncRunOptions,
  onLine: (line: string) => void,
): Promise<{ status: ExitStatus; stderr: string }> {
  const tool = opts.onToolOutput;
  const end = await runProcess(bin, args, {
    ...(tool ? { onLine: (line: string) => tool(line) } : {}),
    dieWithUs: 'TERM',
    env: { LC_ALL: 'C' },
    ...(opts.fds ? { fds: opts.fds } : {}),
    ...(opts.input ? { input: opts.input } : {}),
    ...(opts.onSpawn ? { onSpawn: opts.onSpawn } : {}),
    stdout: onLine,
    missing: { repo, tool: 'rsync' },
  });
  return { status: { code: end.code, signal: end.signal }, stderr: end.stderr };
}

/** What an itemizing rsync said: its items, its --stats totals, the first special file it skipped. */
interface ItemizedRun {
  items: Item[];
  stats: RsyncStats;
  special: string | undefined;
  status: ExitStatus;
  stderr: string;
}

/**
 * Run rsync (see spawnRsync) and read its output back (rsync-plan.ts):
 * every run reposnap makes itemizes. `onItem` sees each item as it comes,
 * with how many came so far.
 */
async function runItemized(
  bin: string,
  args: string[],
  repo: string,
  opts: RsyncRunOptions,
  onItem?: (item: Item, count: number) => void,
): Promise<ItemizedRun> {
  const items: Item[] = [];
  const stats = new RsyncStats();
  let special: string | undefined;
  const { status, stderr } = await spawnRsync(bin, args, repo, opts, (line) => {
    const item = parseLine(line);
    if (item === undefined) stats.read(line);
    else if (item.kind === 'special') special ??= item.path;
    else {
      items.push(item);
      onItem?.(item, items.length);
    }
  });
  return { items, stats, special, status, stderr };
}

function rsyncFailed(repo: string, status: ExitStatus, stderr: string): ReposnapError {
  const meaning = status.code === null ? `killed by ${status.signal ?? 'a signal'}` : `exit ${status.code}: ${RSYNC_EXIT_MEANINGS[status.code] ?? 'unknown error'}`;
  const detail = lastMeaningfulLine(stderr);
  return new ReposnapError('ESOURCE', `repo ${repo}: rsync failed (${meaning})${detail ? `: ${detail}` : ''}`);
}

function withSlash(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

/** The most useful line of rsync's complaints: the first real error. */
function lastMeaningfulLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('rsync error:') && !/^rsync: \[(sender|receiver|generator)\] write error/.test(l));
  const first = lines[0] ?? stderr.trim().split('\n').pop() ?? '';
  return first.length > 300 ? `${first.slice(0, 297)}...` : first;
}
