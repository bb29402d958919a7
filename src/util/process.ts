/**
 * Running a child process, the one way reposnap does it: every tool it runs
 * (rsync, git, cp, du, sync, rm, a verify command, hooks) goes through
 * runProcess, which knows the rules they share:
 *
 * - it is tracked, so an interrupted reposnap stops it (children.ts), and
 *   so does an aborted sync (abort.ts); with `dieWithUs` it also gets a
 *   parent-death signal, so even a reposnap killed with SIGKILL takes it
 *   down (an orphan must not go on writing into a tree the next sync may
 *   take over);
 * - `fds` are passed on as fds 3, 4, ... (lock descriptors: the child holds
 *   the lock for as long as it lives);
 * - `ownGroup` gives it a process group of its own, so that `stop()` stops
 *   it and everything it forked;
 * - its output is captured, split into lines as it arrives (text, or the
 *   bytes as written, for a command the user's configuration names), sent
 *   to our stderr or dropped; of its complaints only the tail is kept, or
 *   they are handed over a line at a time, or sent to our stderr; `onLine`
 *   sees every line of both as well (what `reposnap -v` shows);
 * - a tool that is not installed is a one-line error saying so.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { errnoCode, ReposnapError } from '../errors.js';
import { dyingWithUs, trackChild } from './children.js';

export interface ProcessOptions {
  /** Added to (or, where undefined, removed from) our environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Passed to the child as fds 3, 4, ... */
  fds?: number[];
  /** A process group of its own (see ProcessHandle.stop). */
  ownGroup?: boolean;
  /** The signal the child gets when reposnap dies (where util-linux setpriv can). */
  dieWithUs?: 'TERM' | 'KILL';
  /** Stop it with SIGTERM after this long. */
  timeoutMs?: number;
  /** Written to its stdin, which is then closed (default: no stdin). */
  input?: string | Buffer;
  /**
   * Its stdout: kept whole ('capture', the default), handed over a line at
   * a time (decoded as UTF-8, or as the bytes it wrote), copied to our
   * stderr (a command that talks to the user while --json output stays
   * clean), or dropped.
   */
  stdout?: 'capture' | 'stderr' | 'ignore' | ((line: string, handle: ProcessHandle) => void) | RawLines;
  /** Its stderr: the tail kept (default), the tail kept and handed over a line at a time as well (text or bytes), or copied to ours. */
  stderr?: 'tail' | 'inherit' | ((line: string) => void) | RawLines;
  /** Every line of its stdout (when captured or handed over) and of its stderr (unless copied to ours), as well. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** For "is not installed": the repo and the tool as users know it. */
  missing?: { repo: string; tool: string };
  /** Handed the running child at once (to stop it early: a plan nobody needs any more). */
  onSpawn?: (handle: ProcessHandle) => void;
}

/** Lines handed over as the bytes the command wrote, without the newline (not `onLine`'s). */
export interface RawLines {
  raw: (line: Buffer) => void;
}

export interface ProcessEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout, with stdout: 'capture'. */
  stdout: Buffer;
  /** The last 8 KiB of stderr, with stderr: 'tail'. */
  stderr: string;
}

export interface ProcessHandle {
  readonly child: ChildProcess;
  /** Stop the child (with ownGroup: its whole group) at once. */
  stop(signal?: NodeJS.Signals): void;
}

const STDERR_TAIL = 8192;

/** Run `cmd` and wait for it; resolves with how it ended (a non-zero exit is not an error here). */
export async function runProcess(cmd: string, args: string[], opts: ProcessOptions = {}): Promise<ProcessEnd> {
  const [file, argv] = opts.dieWithUs ? await dyingWithUs(opts.dieWithUs, cmd, args) : [cmd, args];
  const out = opts.stdout ?? 'capture';
  const stdio: StdioOptions = [
    opts.input !== undefined ? 'pipe' : 'ignore',
    out === 'ignore' ? 'ignore' : out === 'stderr' ? process.stderr : 'pipe',
    opts.stderr === 'inherit' ? process.stderr : 'pipe',
    ...(opts.fds ?? []),
  ];
  let env: NodeJS.ProcessEnv | undefined;
  if (opts.env) {
    env = { ...process.env };
    for (const [k, v] of Object.entries(opts.env)) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
  }
  const child = spawn(file, argv, { stdio, ...(env ? { env } : {}), ...(opts.cwd ? { cwd: opts.cwd } : {}), detached: opts.ownGroup === true });
  trackChild(child, { group: opts.ownGroup === true });
  const handle: ProcessHandle = {
    child,
    stop(signal: NodeJS.Signals = 'SIGKILL') {
      try {
        if (opts.ownGroup && child.pid !== undefined) process.kill(-child.pid, signal);
        else child.kill(signal);
      } catch {
        // Gone already.
      }
    },
  };
  opts.onSpawn?.(handle);

  const chunks: Buffer[] = [];
  let stderr = '';
  const tap = opts.onLine;
  // Split as bytes; decoded a line at a time where the reader wants text.
  const text = (stream: 'stdout' | 'stderr', then?: (line: string) => void): LineReader | undefined =>
    tap || then
      ? new LineReader((bytes) => {
          const line = bytes.toString('utf8');
          tap?.(line, stream);
          then?.(line);
        })
      : undefined;
  let lines: LineReader | undefined;
  if (typeof out === 'function') lines = text('stdout', (line) => out(line, handle));
  else if (typeof out === 'object') lines = new LineReader(out.raw);
  else if (out === 'capture') lines = text('stdout');
  if (out !== 'ignore' && out !== 'stderr') {
    (child.stdout as Readable).on('data', (d: Buffer) => {
      if (out === 'capture') chunks.push(d);
      lines?.push(d);
    });
  }
  let errLines: LineReader | undefined;
  if (opts.stderr !== 'inherit') {
    const err = opts.stderr;
    errLines = typeof err === 'object' ? new LineReader(err.raw) : text('stderr', typeof err === 'function' ? err : undefined);
    const tail = new StringDecoder('utf8');
    (child.stderr as Readable).on('data', (d: Buffer) => {
      stderr = (stderr + tail.write(d)).slice(-STDERR_TAIL);
      errLines?.push(d);
    });
  }
  if (opts.input !== undefined) {
    child.stdin?.on('error', () => undefined); // a child that does not read it
    child.stdin?.end(opts.input);
  }
  const timer = opts.timeoutMs ? setTimeout(() => handle.stop('SIGTERM'), opts.timeoutMs) : undefined;
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c, s) => resolve({ code: c, signal: s }));
    });
    lines?.end();
    errLines?.end();
    // setpriv reports a tool it cannot execute itself.
    if (opts.dieWithUs && code === 127 && /failed to execute/.test(stderr) && opts.missing) throw notInstalled(opts.missing, cmd);
    return { code, signal, stdout: Buffer.concat(chunks), stderr };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' && opts.missing) throw notInstalled(opts.missing, cmd);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function notInstalled(m: { repo: string; tool: string }, cmd: string): ReposnapError {
  return new ReposnapError('ESOURCE', `repo ${m.repo}: ${m.tool} is not installed (${cmd} not found in PATH)`);
}

/**
 * The output of a command run for the user (a post-sync hook,
 * sync-verify-command), both streams: to our stderr as it comes, untouched
 * (so that --json output on stdout stays clean), or, given `onLine`, handed
 * to it a line at a time instead, as the bytes the command wrote.
 */
export function userOutput(onLine?: (stream: 'stdout' | 'stderr', line: Buffer) => void): Pick<ProcessOptions, 'stdout' | 'stderr'> {
  if (!onLine) return { stdout: 'stderr', stderr: 'inherit' };
  return { stdout: { raw: (line) => onLine('stdout', line) }, stderr: { raw: (line) => onLine('stderr', line) } };
}

/**
 * Splits a stream of bytes into lines at each newline, leaving the bytes as
 * they are (a caller that wants text decodes each line: a newline ends any
 * character cut short, so that is what a decoder of the whole stream gives).
 */
export class LineReader {
  /** The start of a line not ended yet, chunk by chunk (joined once, however long it gets). */
  private pending: Buffer[] = [];
  constructor(private readonly onLine: (line: Buffer) => void) {}
  push(chunk: Buffer): void {
    let start = 0;
    let nl;
    while ((nl = chunk.indexOf(0x0a, start)) >= 0) {
      const piece = chunk.subarray(start, nl);
      if (this.pending.length > 0) {
        this.pending.push(piece);
        this.onLine(Buffer.concat(this.pending));
        this.pending = [];
      } else this.onLine(piece);
      start = nl + 1;
    }
    if (start < chunk.length) this.pending.push(chunk.subarray(start));
  }
  end(): void {
    if (this.pending.length > 0) this.onLine(Buffer.concat(this.pending));
    this.pending = [];
  }
}
