/**
 * Where reposnap's messages go besides stdout: stderr, with syslog
 * priorities when stderr is the systemd journal, and the --log-file.
 *
 * The journal: systemd sets JOURNAL_STREAM to the device and inode of the
 * stream it gave the service; when stderr is that stream, each line starts
 * with `<N>` (3 error, 4 warning, 6 info, 7 debug), which journald reads as
 * the line's priority (systemd.exec(5), sd-daemon(3)). Nothing is drawn
 * there: no progress, no colour. The output of the commands a sync runs for
 * the user (post-sync hooks, sync-verify-command) is prefixed too, a line
 * at a time: stdout as information, stderr as a warning, unless a line
 * starts with a priority of its own (a command that speaks to the journal
 * as sd-daemon(3) says: its stderr was the journal before it was ours to
 * prefix).
 */
import { fstatSync, openSync, writeSync } from 'node:fs';
import { errnoCode, ReposnapError } from '../errors.js';

export type Level = 'error' | 'warning' | 'info' | 'debug';

const PRIORITY: Record<Level, number> = { error: 3, warning: 4, info: 6, debug: 7 };

/** Whether file descriptor `fd` is the stream JOURNAL_STREAM names. */
export function isJournal(fd = 2, journalStream = process.env.JOURNAL_STREAM): boolean {
  const m = /^(\d+):(\d+)$/.exec(journalStream ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] as string) && st.ino === BigInt(m[2] as string);
  } catch {
    return false;
  }
}

let stderrJournal: boolean | undefined;

/** Whether our stderr is the journal (looked at once). */
export function stderrIsJournal(): boolean {
  stderrJournal ??= isJournal(2);
  return stderrJournal;
}

/** `text` (one line or several) on stderr at `level`: prefixed with its priority for the journal. */
export function writeStderr(level: Level, text: string, stream: NodeJS.WritableStream = process.stderr): void {
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  const lines = stderrIsJournal() ? body.split('\n').map((l) => `<${PRIORITY[level]}>${l}`) : [body];
  stream.write(`${lines.join('\n')}\n`);
}

/**
 * A line of a command's output (its bytes, untouched) on stderr at
 * `level`: in the journal with its priority, unless the line gives its own.
 */
export function writeCommandLine(level: Level, line: Buffer, stream: NodeJS.WritableStream = process.stderr): void {
  const prefix = stderrIsJournal() && !/^<[0-7]>/.test(line.toString('latin1', 0, 3)) ? `<${PRIORITY[level]}>` : '';
  stream.write(Buffer.concat([Buffer.from(prefix), line, NEWLINE]));
}

const NEWLINE = Buffer.from('\n');

/**
 * The --log-file: lines appended as they happen, each with the time (UTC,
 * to the millisecond), our pid and its level, so that the runs of several
 * processes sharing one file stay apart. One write per message, with
 * O_APPEND: lines of concurrent runs do not interleave within a line.
 */
export class LogFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /** Open (or create) `path` for appending; a log file that cannot be opened is a usage error. */
  static open(path: string): LogFile {
    try {
      return new LogFile(path, openSync(path, 'a', 0o644));
    } catch (err) {
      throw new ReposnapError('EUSAGE', `cannot open the log file ${path}: ${errnoCode(err) ?? String(err)}`);
    }
  }

  write(level: Level, text: string): void {
    const stamp = `${new Date().toISOString()} reposnap[${process.pid}] ${level}: `;
    const body = text.endsWith('\n') ? text.slice(0, -1) : text;
    try {
      writeSync(this.fd, body.split('\n').map((l) => `${stamp}${l}\n`).join(''));
    } catch {
      // A full or vanished log must not fail the sync it records.
    }
  }
}
