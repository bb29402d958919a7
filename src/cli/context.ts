/** What every command needs: the configuration, output, and exit statuses. */
import { Repos } from '../repos.js';
import { BusyError, EXIT_BUSY, EXIT_FAILURE, EXIT_OK } from '../errors.js';
import { Output } from './output.js';

export interface GlobalOptions {
  config?: string;
  quiet?: boolean;
}

export interface CommandContext {
  out: Output;
  repos(): Repos;
}

export function makeContext(global: GlobalOptions, json: boolean): CommandContext {
  const out = new Output({ json, quiet: global.quiet === true });
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

/** The exit status for per-repo failures: busy only if every failure was busy. */
export function combinedExit(errors: unknown[]): number {
  if (errors.length === 0) return EXIT_OK;
  return errors.every((e) => e instanceof BusyError) ? EXIT_BUSY : EXIT_FAILURE;
}
