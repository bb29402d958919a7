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
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { errnoCode, ReposnapError } from '../errors.js';
import { dyingWithUs, trackChild } from '../util/children.js';
import { emptyChanges, requireSourceDir, type FillContext, type SourceResult, type SyncSource } from './source.js';

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

  async fill(ctx: FillContext): Promise<SourceResult> {
    const src = this.sourceArg();
    if (src.local !== undefined) await requireSourceDir(ctx.repo, src.local);
    const args = [
      '-a',
      '--delete',
      '--no-D',
      // Snapshots are never writable by group or others (see SNAPSHOT_MODE_BITS).
      '--chmod=go-w',
      '--itemize-changes',
      '--stats',
      '--no-human-readable',
      ...ctx.excludeTop.map((n) => `--exclude=/${n}`),
    ];
    if (src.local === undefined) args.push('--timeout=180');
    if (src.remoteShell) args.push('-e', src.remoteShell);
    args.push(...(this.opts.extraOpts ?? []), src.arg, withSlash(ctx.target));
    return await runRsync(this.opts.rsync ?? 'rsync', args, ctx);
  }
}

function withSlash(p: string): string {
  return p.endsWith('/') ? p : `${p}/`;
}

async function runRsync(bin: string, args: string[], ctx: FillContext): Promise<SourceResult> {
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe', ...(ctx.lockFds ?? [])];
  // TERM, not KILL: rsync removes its temporary file on TERM.
  const [cmd, argv] = await dyingWithUs('TERM', bin, args);
  const child = spawn(cmd, argv, { stdio });
  trackChild(child);
  const changes = emptyChanges();
  let changed = false;
  let scanned = 0;
  let files = 0;
  let bytes = 0;
  let stderr = '';
  let buffered = '';
  let specialFile: string | undefined;

  const onLine = (line: string): void => {
    const m = /^([<>ch.*][fdLDS ]\S*)\s/.exec(line);
    if (m) {
      const code = m[1] as string;
      scanned++;
      if (code.startsWith('*deleting')) {
        changes.deleted++;
        changed = true;
      } else if (code[1] === 'd' && /^\.d[.t]+$/.test(code)) {
        // Only a directory time was set: not a change of content.
      } else {
        changed = true;
        if (code.includes('+++++')) changes.added++;
        else changes.updated++;
      }
      if (scanned % 200 === 0) ctx.onProgress?.({ scanned, changed: changes.added + changes.updated + changes.deleted });
      return;
    }
    if (line.startsWith('*deleting')) {
      changes.deleted++;
      changed = true;
      return;
    }
    // --no-D makes rsync skip devices, FIFOs and sockets; the local source
    // refuses them, and so does this one rather than commit a tree that
    // silently lacks entries upstream has.
    const special = /^skipping non-regular file "(.*)"$/.exec(line);
    if (special) {
      specialFile ??= special[1] as string;
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
  };

  const stdout = child.stdout as Readable;
  const stderrStream = child.stderr as Readable;
  stdout.setEncoding('utf8');
  stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  });
  stderrStream.setEncoding('utf8');
  stderrStream.on('data', (chunk: string) => {
    // Keep the tail only: rsync can complain about every file.
    stderr = (stderr + chunk).slice(-8192);
  });

  const status = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  }).catch((err: unknown) => {
    if (errnoCode(err) === 'ENOENT') {
      throw new ReposnapError('ESOURCE', `repo ${ctx.repo}: rsync is not installed (${bin} not found in PATH)`);
    }
    throw err;
  });
  if (buffered) onLine(buffered);

  if (status.code === 127 && /failed to execute/.test(stderr)) {
    throw new ReposnapError('ESOURCE', `repo ${ctx.repo}: rsync is not installed (${bin} not found in PATH)`);
  }
  if (status.code !== 0) {
    const meaning = status.code === null ? `killed by ${status.signal ?? 'a signal'}` : `exit ${status.code}: ${RSYNC_EXIT_MEANINGS[status.code] ?? 'unknown error'}`;
    const detail = lastMeaningfulLine(stderr);
    throw new ReposnapError('ESOURCE', `repo ${ctx.repo}: rsync failed (${meaning})${detail ? `: ${detail}` : ''}`);
  }
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
