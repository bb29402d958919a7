/**
 * What a source kind contributes to reading repos.conf: the keys it owns,
 * how they are read and checked, and how the source is made from them.
 * The configuration reader (config/repos.ts) knows only the keys every
 * repository has; for `sync-type = X` it hands the rest to kind X. Adding a
 * source is a file in this folder and a line in index.ts.
 */
import type { ConfigPosition } from '../errors.js';
import type { SyncSource } from './source.js';

/** Reading one repository's values, with errors at the key's file and line. */
export interface ConfigReader {
  /** The raw value, if set (in the section or in DEFAULT). */
  get(key: string): string | undefined;
  /** Where `key` is set (or the section, if it is not). */
  at(key: string): ConfigPosition;
  /** yes/no/true/false. */
  bool(key: string, dflt: boolean): boolean;
  /** A whole number >= 0. */
  count(key: string, dflt: number): number;
  /** A size such as 2G, 500M or 1048576. */
  size(key: string, dflt: number): number;
  /** A path, made absolute against the file that says it (undefined when unset). */
  path(key: string): string | undefined;
}

export interface SourceKind<C extends { type: string }> {
  readonly type: C['type'];
  /** The repos.conf keys this kind reads, besides sync-type and sync-uri. */
  readonly keys: readonly string[];
  /** The sync-uri when none is set; without one, sync-uri is required. */
  readonly defaultUri?: string;
  /** Why `uri` (already normalised) cannot be this kind's sync-uri, or undefined. */
  checkUri?(uri: string): string | undefined;
  /** Read and check this kind's keys; throws ConfigError at the key. */
  parse(r: ConfigReader): C;
  /** The source for a repository with this configuration. */
  create(uri: string, config: C): SyncSource;
}
