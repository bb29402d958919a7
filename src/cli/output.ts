/**
 * The output layer: what every command says and where it goes.
 *
 * - stdout: the command's result, as lines or, with --json, as one JSON
 *   document (the envelope: {"version":1,"command":...,"results":...} or
 *   {"version":1,"command":...,"error":{...}});
 * - stderr: notices, warnings, errors, and with --verbose the output of the
 *   tools a sync runs; the output of the commands it runs for the user
 *   (hooks, sync-verify-command); with syslog priorities when it is the
 *   journal (log.ts);
 * - progress, drawn on a terminal only, never with --json or --quiet, and
 *   never in the journal (progress.ts);
 * - the --log-file: result lines, notices, warnings and errors, the output
 *   of hooks and sync-verify-command (and with --verbose the tools'),
 *   timestamped, whatever --quiet and --json say.
 */
import { BusyError, ConfigError, errnoCode, ReposnapError, type LockHolder } from '../errors.js';
import { stderrIsJournal, writeCommandLine, writeStderr, type Level, type LogFile } from './log.js';
import { ProgressBoard } from './progress.js';
import { escapeControls } from '../util/controls.js';

/** The version of the JSON envelope; it changes only when a change would break a reader. */
export const JSON_VERSION = 1;

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
  /** Show the output of the tools a sync runs (rsync's itemized changes, git's fetch). */
  verbose?: boolean;
  /** The command as the JSON envelope names it ("sync", "stamp show"); null when none was recognised. */
  command?: string | null;
  log?: LogFile;
}

/** An error as --json shows it. */
export interface ErrorJson {
  code: string;
  message: string;
  /** The repository, where known. */
  repo?: string;
  /** Where in the configuration (a configuration error). */
  file?: string;
  line?: number;
  section?: string;
  key?: string;
  /** Who holds the repository (busy). */
  holder?: LockHolder;
  /** The system's error code, for an error that is not reposnap's own (EACCES...). */
  errno?: string;
}

export class Output {
  private readonly board: ProgressBoard | undefined;
  private readonly warnings: string[] = [];
  private answered = false;

  constructor(
    readonly opts: OutputOptions,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    if (this.progressEnabled) this.board = new ProgressBoard(stderr);
  }

  get progressEnabled(): boolean {
    return !this.opts.json && !this.opts.quiet && this.stderr.isTTY === true && !stderrIsJournal();
  }

  /** A result line (human mode), and a line in the log whatever the mode. */
  info(line: string): void {
    this.opts.log?.write('info', line);
    if (this.opts.json || this.opts.quiet) return;
    this.above(() => this.stdout.write(`${line}\n`));
  }

  /** Always printed: human output that is the command's whole point. */
  print(text: string): void {
    this.above(() => this.stdout.write(text.endsWith('\n') ? text : `${text}\n`));
  }

  /** The command's result in the JSON envelope, once. */
  results(value: unknown): void {
    this.envelope({ results: value });
  }

  /**
   * The command failed as a whole: the error on stderr and, with --json,
   * the error envelope on stdout (unless a result was printed already).
   * `said`: the stderr line was written already (commander's usage errors).
   */
  fail(err: unknown, repo?: string, opts: { said?: boolean } = {}): void {
    if (!opts.said) this.error(err, repo);
    if (this.opts.json && !this.answered) this.envelope({ error: errorJson(err, repo) });
  }

  /**
   * What the user should know now, on stderr (stdout stays the command's
   * result, --json included): not with --quiet.
   */
  notice(message: string): void {
    this.say('info', `reposnap: ${message}`, !this.opts.quiet);
  }

  warn(message: string): void {
    this.warnings.push(message);
    this.say('warning', `reposnap: warning: ${message}`, true);
  }

  /** One line for `err`; `repo` names the repository when the error itself does not. */
  error(err: unknown, repo?: string): void {
    const msg = errorMessage(err);
    const named = repo === undefined || err instanceof ReposnapError || msg.startsWith(`repo ${repo}`) ? msg : `repo ${repo}: ${msg}`;
    this.say('error', `reposnap: ${named}`, true);
  }

  /** A line of a tool's output (rsync, git), shown with --verbose. */
  tool(repo: string, tool: string, line: string): void {
    if (!this.opts.verbose || line.trim() === '') return;
    this.say('debug', `reposnap: ${repo}: ${tool}: ${line}`, !this.opts.quiet);
  }

  /**
   * Where the output of the commands a sync runs for the user (post-sync
   * hooks, sync-verify-command) goes a line at a time, or undefined when it
   * may go to stderr as it comes, untouched: that is, unless stderr is the
   * journal (each line gets its priority: see log.ts), carries the progress
   * board (each line is written above it, not across it) or there is a
   * --log-file (each line is recorded there too, naming the repository and
   * the command, stdout as information and stderr as a warning, decoded as
   * UTF-8 with control characters escaped). On stderr each line is the
   * bytes the command wrote, and a last line without its newline gets one.
   * Printed on stderr whatever --quiet says, as when it goes straight there.
   */
  get commandOutput(): ((o: { repo: string; command: 'hook' | 'verify'; name: string; stream: 'stdout' | 'stderr'; line: string; bytes: Buffer }) => void) | undefined {
    const log = this.opts.log;
    if (!this.board && !stderrIsJournal() && !log) return undefined;
    return ({ repo, command, name, stream, line, bytes }) => {
      const level = stream === 'stdout' ? 'info' : 'warning';
      const who = command === 'hook' ? `post-sync hook ${name}` : 'sync-verify-command';
      log?.write(level, `${repo}: ${escapeControls(who)}: ${escapeControls(line)}`);
      this.above(() => writeCommandLine(level, bytes, this.stderr));
    };
  }

  /** Set `key`'s progress line (a repository's); `phase`: a new phase, drawn at once. */
  progress(key: string, line: string, phase = false): void {
    this.board?.set(key, line, phase);
  }

  /** `key` is done: its progress line goes. */
  progressDone(key: string): void {
    this.board?.remove(key);
  }

  /** The end: no more progress. */
  close(): void {
    this.board?.close();
  }

  private say(level: Level, line: string, onStderr: boolean): void {
    this.opts.log?.write(level, line.replace(/^reposnap: /, ''));
    if (onStderr) this.above(() => writeStderr(level, line, this.stderr));
  }

  /** Write above the progress lines, which are drawn again below. */
  private above(write: () => void): void {
    this.board?.clear();
    write();
    this.board?.redraw();
  }

  private envelope(body: { results: unknown } | { error: ErrorJson }): void {
    if (this.answered) return;
    this.answered = true;
    const doc = { version: JSON_VERSION, command: this.opts.command ?? null, ...body, ...(this.warnings.length > 0 ? { warnings: this.warnings } : {}) };
    this.above(() => this.stdout.write(`${JSON.stringify(doc, wholeMilliseconds, 2)}\n`));
  }
}

/** Times in JSON (every field ending in "Ms") are whole milliseconds. */
function wholeMilliseconds(key: string, value: unknown): unknown {
  return typeof value === 'number' && key.endsWith('Ms') ? Math.round(value) : value;
}

/** `err` as --json shows it: its code, its message, and what it says about where. */
export function errorJson(err: unknown, repo?: string): ErrorJson {
  const errno = err instanceof ReposnapError ? undefined : errnoCode(err);
  const out: ErrorJson = {
    code: err instanceof ReposnapError ? err.code : 'EINTERNAL',
    message: err instanceof ReposnapError ? err.message : errorMessage(err),
  };
  const section = err instanceof ConfigError ? err.position.section : undefined;
  const named = repo ?? (section !== undefined && section !== 'DEFAULT' ? section : undefined);
  if (named !== undefined) out.repo = named;
  if (err instanceof ConfigError) {
    out.file = err.position.file;
    if (err.position.line > 0) out.line = err.position.line;
    if (err.position.section !== undefined) out.section = err.position.section;
    if (err.position.key !== undefined) out.key = err.position.key;
  }
  if (err instanceof BusyError && err.holder) out.holder = err.holder;
  if (errno !== undefined) out.errno = errno;
  return out;
}

/** One line: our errors as they are, anything else with its code. */
export function errorMessage(err: unknown): string {
  if (err instanceof ReposnapError) return err.message.split('\n')[0] ?? err.message;
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    // Node's own errors already start with their code ("EROFS: read-only ...").
    const prefix = typeof code === 'string' && !err.message.startsWith(code) ? `${code}: ` : '';
    return `${prefix}${err.message}`.split('\n')[0] ?? '';
  }
  return String(err);
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function formatAge(iso: string | null, now = Date.now()): string {
  if (iso === null) return 'unknown time';
  const s = Math.round((now - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}
