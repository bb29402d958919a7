/**
 * Errors that reposnap reports to its users. Every error carries a stable
 * `code` (for programs) and the process exit status the CLI maps it to, so the
 * library and the CLI agree on what a failure means.
 *
 * Exit statuses follow sysexits where one fits: 1 failure, 2 usage or
 * configuration error, 75 (EX_TEMPFAIL) busy.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_BUSY = 75;

export type ErrorCode =
  | 'ECONFIG' // repos.conf is invalid
  | 'EUSAGE' // the command line is invalid
  | 'EBUSY' // another process holds the repo
  | 'ESOURCE' // the sync source failed (missing, unreadable, rsync error)
  | 'ESTORE' // the store is in a state reposnap will not touch
  | 'EUNSAFE' // hostile or unsafe input was refused
  | 'EVERIFY' // sync-verify-command rejected the update
  | 'EHOOK' // a post-sync hook failed
  | 'ENOREPO' // no such repo in the configuration
  | 'EABORTED' // the caller's AbortSignal stopped it
  | 'EINTERNAL';

export class ReposnapError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; exitCode?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ReposnapError';
    this.code = code;
    this.exitCode = options?.exitCode ?? defaultExit(code);
  }
}

function defaultExit(code: ErrorCode): number {
  switch (code) {
    case 'ECONFIG':
    case 'EUSAGE':
    case 'ENOREPO':
      return EXIT_USAGE;
    case 'EBUSY':
      return EXIT_BUSY;
    default:
      return EXIT_FAILURE;
  }
}

/** Where in a configuration file something was said. */
export interface ConfigPosition {
  file: string;
  line: number;
  section?: string;
  key?: string;
}

/** A repos.conf problem, rendered as `FILE:LINE: [section] key: message`. */
export class ConfigError extends ReposnapError {
  readonly position: ConfigPosition;

  constructor(position: ConfigPosition, message: string) {
    super('ECONFIG', `${formatPosition(position)}: ${message}`);
    this.name = 'ConfigError';
    this.position = position;
  }
}

export function formatPosition(p: ConfigPosition): string {
  // Line 0 means "the file as a whole" (unreadable, empty directory...).
  let s = p.line > 0 ? `${p.file}:${p.line}` : p.file;
  if (p.section !== undefined) s += `: [${p.section}]`;
  if (p.key !== undefined) s += ` ${p.key}`;
  return s;
}

/** The lock holder that made an operation busy, as far as it told us. */
export interface LockHolder {
  pid: number;
  operation?: string;
  since?: string;
}

export class BusyError extends ReposnapError {
  readonly holder: LockHolder | undefined;

  constructor(message: string, holder: LockHolder | undefined) {
    super('EBUSY', message);
    this.name = 'BusyError';
    this.holder = holder;
  }
}

/**
 * An operation stopped by the AbortSignal its caller gave it (a sync:
 * nothing was published). Its name is "AbortError", as the web platform's
 * is, so that `err.name === 'AbortError'` checks work; its cause is the
 * signal's reason.
 */
export class AbortedError extends ReposnapError {
  constructor(message: string, reason: unknown) {
    super('EABORTED', message, { cause: reason });
    this.name = 'AbortError';
  }
}

/** The errno-style code of a Node system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Whether an error (or what caused it, or the tool output quoted in it) says
 * the filesystem is out of space or inodes.
 */
export function isOutOfSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    const code = errnoCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (e instanceof Error && /\b(ENOSPC|EDQUOT)\b|No space left on device|Disk quota exceeded/.test(e.message)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}
