/**
 * The `rsync` source: the real rsync, run with `-a --delete` into the target.
 *
 * rsync writes every changed file to a temporary name and renames it into
 * place (unless told --inplace or --append, which configuration refuses), so
 * running it over a hardlinked clone never writes into a published snapshot.
 * Devices and specials are not transferred (`--no-D`): nothing from upstream
 * should create device nodes in a tree that root reads.
 *
 * Whether anything changed comes from `--itemize-changes`: one line per item
 * rsync touched. Lines that only say a directory's time was set do not count.
 * Before any clone, the same rsync with --dry-run against the current
 * snapshot tells a no-op sync from one with changes (see precheck).
 */
import { ConfigError, ReposnapError } from '../errors.js';
import { shellSplit } from '../util/shlex.js';
import type { SourceKind } from './kind.js';
import { refusedRsyncOptions } from './rsync-options.js';
import { runProcess, type ProcessHandle } from '../util/process.js';
import { failpoint } from '../util/failpoint.js';
import { emptyChanges, requireSourceDir, type FillContext, type PrecheckContext, type SourceResult, type SyncSource } from './source.js';
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
    if (uri.startsWith('/')) return { arg: withSlash(uri), local: uri };
    return { arg: withSlash(uri) }; // host:path
  }

  /**
   * The arguments that make `target` equal to upstream (with `dryRun`, that
   * say what would change). The user's options (allow-listed, see
   * rsync-options.ts) come after the defaults they may change (the timeout)
   * and before reposnap's own, so that where rsync lets the last one win,
   * ours do.
   */
  private args(target: string, excludeTop: string[], dryRun: boolean): string[] {
    const src = this.sourceArg();
    const args: string[] = [];
    if (src.local === undefined) args.push('--timeout=180');
    args.push(
      ...(this.opts.extraOpts ?? []),
      '-a',
      '--delete',
      '--no-D',
      // Snapshots are never writable by group or others, and a fill that is
      // not root's makes no set-id files (see SNAPSHOT_MODE_BITS).
      isRoot ? '--chmod=go-w' : '--chmod=go-w,ug-s',
      '--itemize-changes',
      '--stats',
      '--no-human-readable',
      ...excludeTop.map((n) => `--exclude=/${n}`),
    );
    // Line-buffered output, so that the first change is seen as rsync finds it.
    if (dryRun) args.push('--dry-run', '--outbuf=L');
    if (src.remoteShell) args.push('-e', src.remoteShell);
    args.push(src.arg, withSlash(target));
    return args;
  }

  /**
   * rsync --dry-run from upstream against the current snapshot (which it
   * only reads), stopped at the first line that itemizes a change: a no-op
   * sync then costs what rsync's own no-op costs, instead of a clone, an
   * rsync and a discard; a sync with changes pays for a few entries of
   * file list. A failure to reach upstream fails the sync now, as the fill
   * would; any other trouble counts as a change, for the fill to report.
   */
  async precheck(ctx: PrecheckContext): Promise<boolean> {
    if (ctx.current === undefined) return false;
    await this.requireLocalSource(ctx.repo);
    let found = false;
    // Its own process group, so that all of it can be stopped at once:
    // rsync forks its receiver, which would otherwise walk on to the end
    // (measured: the whole no-op time) holding the output pipe open. A dry
    // run writes nothing, so KILL loses nothing.
    const { status, stderr } = await spawnRsync(this.opts.rsync ?? 'rsync', this.args(ctx.current, [], true), ctx.repo, { ownGroup: true }, (line, rsync) => {
      const item = classify(line);
      if (found || item === undefined || item.kind === 'dir-time') return;
      found = true;
      rsync.stop('SIGKILL');
    });
    if (found) return false;
    if (status.code === 0) return true;
    if (status.code !== null && UNREACHABLE.has(status.code)) throw rsyncFailed(ctx.repo, status, stderr);
    return false;
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    await this.requireLocalSource(ctx.repo);
    await ctx.beginWriting();
    return await runRsync(this.opts.rsync ?? 'rsync', this.args(ctx.target, ctx.excludeTop, false), ctx);
  }

  /** A source on this machine must be a readable directory (a clear error otherwise). */
  private async requireLocalSource(repo: string): Promise<void> {
    const local = this.sourceArg().local;
    if (local !== undefined) await requireSourceDir(repo, local);
  }
}

/** Exits that mean upstream could not be reached or spoken to: a fill would fail the same way. */
const UNREACHABLE = new Set([5, 10, 12, 30, 35]);

/** What one line of `--itemize-changes` output says, or undefined when it is not an item. */
export function classify(line: string): { kind: 'added' | 'updated' | 'deleted' | 'dir-time' } | { kind: 'special'; path: string } | undefined {
  if (line.startsWith('*deleting')) return { kind: 'deleted' };
  const m = /^([<>ch.*][fdLDS ]\S*)\s/.exec(line);
  if (m) {
    const code = m[1] as string;
    // Only a directory time was set: not a change of content.
    if (code[1] === 'd' && /^\.d[.t]+$/.test(code)) return { kind: 'dir-time' };
    return { kind: code.includes('+++++') ? 'added' : 'updated' };
  }
  // --no-D makes rsync skip devices, FIFOs and sockets; they are refused
  // rather than leave a tree that silently lacks entries upstream has.
  const special = /^skipping non-regular file "(.*)"$/.exec(line);
  if (special) return { kind: 'special', path: special[1] as string };
  return undefined;
}

interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Run rsync (dying with us: TERM, so that it removes its temporary file),
 * handing each line of its output to `onLine`; resolves with its exit and
 * the tail of its complaints. `fds` are passed on (lock descriptors);
 * `ownGroup` puts it in a process group of its own.
 */
async function spawnRsync(
  bin: string,
  args: string[],
  repo: string,
  opts: { fds?: number[]; ownGroup?: boolean },
  onLine: (line: string, handle: ProcessHandle) => void,
): Promise<{ status: ExitStatus; stderr: string }> {
  const end = await runProcess(bin, args, {
    dieWithUs: 'TERM',
    ...(opts.fds ? { fds: opts.fds } : {}),
    ...(opts.ownGroup ? { ownGroup: true } : {}),
    stdout: onLine,
    missing: { repo, tool: 'rsync' },
  });
  return { status: { code: end.code, signal: end.signal }, stderr: end.stderr };
}

function rsyncFailed(repo: string, status: ExitStatus, stderr: string): ReposnapError {
  const meaning = status.code === null ? `killed by ${status.signal ?? 'a signal'}` : `exit ${status.code}: ${RSYNC_EXIT_MEANINGS[status.code] ?? 'unknown error'}`;
  const detail = lastMeaningfulLine(stderr);
  return new ReposnapError('ESOURCE', `repo ${repo}: rsync failed (${meaning})${detail ? `: ${detail}` : ''}`);
}

function withSlash(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

async function runRsync(bin: string, args: string[], ctx: FillContext): Promise<SourceResult> {
  const changes = emptyChanges();
  let changed = false;
  let scanned = 0;
  let files = 0;
  let bytes = 0;
  let specialFile: string | undefined;
  // rsync cannot be stopped halfway from here: the failpoint is reached
  // when it has written everything, before the fill reports back (the
  // record still says "partial").
  let midway = false;

  const { status, stderr } = await spawnRsync(bin, args, ctx.repo, { fds: ctx.lockFds ?? [] }, (line) => {
    const item = classify(line);
    if (item?.kind === 'special') {
      specialFile ??= item.path;
      return;
    }
    if (item) {
      scanned++;
      if (item.kind !== 'dir-time') {
        changed = true;
        changes[item.kind]++;
        midway = true;
      }
      if (scanned % 200 === 0) ctx.onProgress?.({ scanned, changed: changes.added + changes.updated + changes.deleted });
      return;
    }
    const num = (re: RegExp): number | undefined => {
      const mm = re.exec(line);
      return mm ? Number((mm[1] as string).replace(/,/g, '')) : undefined;
    };
    const nFiles = num(/^Number of files: ([\d,]+)/);
    if (nFiles !== undefined) {
      const dirs = /dir: ([\d,]+)/.exec(line);
      files = nFiles - (dirs ? Number((dirs[1] as string).replace(/,/g, '')) : 0);
    }
    const size = num(/^Total file size: ([\d,]+)/);
    if (size !== undefined) bytes = size;
    const sent = num(/^Total transferred file size: ([\d,]+)/);
    if (sent !== undefined) changes.bytesTransferred = sent;
  });

  if (midway) await failpoint('fill-midway');
  if (status.code !== 0) throw rsyncFailed(ctx.repo, status, stderr);
  if (specialFile !== undefined) throw new ReposnapError('EUNSAFE', `repo ${ctx.repo}: refusing special file (device, FIFO or socket) ${specialFile}`);
  return { changed, changes, tree: { files, bytes } };
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
