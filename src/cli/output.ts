/**
 * Terminal output: one-line errors, progress that is drawn only on a terminal
 * (and never with --json or --quiet), and human-readable numbers.
 */
import { ReposnapError } from '../errors.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
}

export class Output {
  private progressShown = false;
  private lastDraw = 0;

  constructor(
    readonly opts: OutputOptions,
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {}

  get progressEnabled(): boolean {
    return !this.opts.json && !this.opts.quiet && this.stderr.isTTY === true;
  }

  /** A result line (human mode) or nothing. */
  info(line: string): void {
    if (this.opts.json || this.opts.quiet) return;
    this.clearProgress();
    this.stdout.write(`${line}\n`);
  }

  /** Always printed: human output that is the command's whole point. */
  print(text: string): void {
    this.clearProgress();
    this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  json(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /**
   * What the user should know now, on stderr (stdout stays the command's
   * result, --json included): not with --quiet.
   */
  notice(message: string): void {
    if (this.opts.quiet) return;
    this.clearProgress();
    this.stderr.write(`reposnap: ${message}\n`);
  }

  warn(message: string): void {
    this.clearProgress();
    this.stderr.write(`reposnap: warning: ${message}\n`);
  }

  /** One line for `err`; `repo` names the repository when the error itself does not. */
  error(err: unknown, repo?: string): void {
    this.clearProgress();
    const msg = errorMessage(err);
    const named = repo === undefined || err instanceof ReposnapError || msg.startsWith(`repo ${repo}`) ? msg : `repo ${repo}: ${msg}`;
    this.stderr.write(`reposnap: ${named}\n`);
  }

  /** Redraw the progress line, at most ten times a second. */
  progress(line: string): void {
    if (!this.progressEnabled) return;
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = this.stderr.columns || 80;
    this.stderr.write(`\r\x1b[K${line.slice(0, width - 1)}`);
    this.progressShown = true;
  }

  clearProgress(): void {
    if (!this.progressShown) return;
    this.stderr.write('\r\x1b[K');
    this.progressShown = false;
  }
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
