/** What every command needs: the configuration, output, and exit statuses. */
import { Repos } from '../repos.js';
import { BusyError, EXIT_BUSY, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ReposnapError } from '../errors.js';
import { LogFile } from './log.js';
import { Output } from './output.js';

export interface GlobalOptions {
  config?: string;
  quiet?: boolean;
  json?: boolean;
  verbose?: boolean;
  logFile?: string;
}

export interface CommandContext {
  out: Output;
  repos(): Repos;
}

/**
 * The context `command` ("sync", "stamp show") runs in. A log file that
 * cannot be opened fails here, before the command does anything.
 */
export function makeContext(global: GlobalOptions, command: string): CommandContext {
  const out = new Output({
    json: global.json === true,
    quiet: global.quiet === true,
    verbose: global.verbose === true,
    command,
    ...(global.logFile !== undefined ? { log: LogFile.open(global.logFile) } : {}),
  });
  let loaded: Repos | undefined;
  return {
    out,
    repos() {
      if (!loaded) {
        loaded = Repos.load(global.config !== undefined ? { path: global.config } : {});
        for (const w of loaded.warnings) out.warn(w);
      }
      return loaded;
    },
  };
}

/**
 * The exit status for per-repo failures: busy (75) or a configuration error
 * (2) only when every failure was of that kind; otherwise failure (1).
 */
export function combinedExit(errors: unknown[]): number {
  if (errors.length === 0) return EXIT_OK;
  if (errors.every((e) => e instanceof BusyError)) return EXIT_BUSY;
  if (errors.every((e) => e instanceof ReposnapError && e.exitCode === EXIT_USAGE)) return EXIT_USAGE;
  return EXIT_FAILURE;
}
