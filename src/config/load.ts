/**
 * Finding and reading repos.conf the way Portage does.
 *
 * Which configuration: an explicit path (--config), then $REPOSNAP_CONFIG,
 * then /etc/reposnap/repos.conf, then Portage's own,
 * $PORTAGE_CONFIGROOT/etc/portage/repos.conf.
 *
 * Portage's own is read as Portage reads it: its shipped defaults first
 * ($EPREFIX/usr/share/portage/config/repos.conf, where [gentoo] gets its
 * location, sync-type and verification keys), then the user's file or
 * folder over them, key by key. A folder is read recursively, files and
 * subfolders in one lexical order, leaving out names starting with "." or
 * ending with "~" and version-control folders; what cannot be read as a
 * regular file there (a dangling symlink, a FIFO) is left out with a
 * warning, as Portage leaves it out. reposnap's own configuration is not
 * layered over Portage's defaults unless asked ($REPOSNAP_PORTAGE_DEFAULTS
 * or LoadOptions.portageDefaults): a [gentoo] nobody wrote there would be
 * synced by `reposnap sync`.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, errnoCode } from '../errors.js';
import { emptyDocument, parseIniInto } from './ini.js';
import { builtinDefaults } from './interpolate.js';
import { interpretRepos, type ReposConfig } from './repos.js';

/** reposnap's own configuration; Portage's comes after it (portageUserConfig). */
export const SYSTEM_CONFIG_PATHS = ['/etc/reposnap/repos.conf', '/etc/portage/repos.conf'];

export interface LoadOptions {
  /** An explicit path (file or directory); must exist. */
  path?: string;
  /** Environment to read REPOSNAP_CONFIG, EPREFIX, PORTAGE_CONFIGROOT... from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Fallback paths, for tests (default: /etc/reposnap/repos.conf, then Portage's). */
  systemPaths?: string[];
  /**
   * Portage's shipped defaults file to read first: a path, or null for
   * none. Default: $REPOSNAP_PORTAGE_DEFAULTS if set (empty: none), else
   * $EPREFIX/usr/share/portage/config/repos.conf, for Portage's own
   * configuration only.
   */
  portageDefaults?: string | null;
}

const VCS_DIRS = new Set(['CVS', '.bzr', '.git', '.hg', '.svn']);

/** Portage's user configuration: $PORTAGE_CONFIGROOT/etc/portage/repos.conf. */
export function portageUserConfig(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(builtinDefaults(env).portage_configroot, 'etc', 'portage', 'repos.conf');
}

function systemPaths(opts: LoadOptions, env: NodeJS.ProcessEnv): string[] {
  return opts.systemPaths ?? [SYSTEM_CONFIG_PATHS[0] as string, portageUserConfig(env)];
}

/** Which configuration path applies, following the lookup order (undefined: none there). */
function lookup(opts: LoadOptions, env: NodeJS.ProcessEnv): { file: string; portage: boolean } | undefined {
  if (opts.path !== undefined && opts.path !== '') return { file: path.resolve(opts.path), portage: false };
  const fromEnv = env.REPOSNAP_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return { file: path.resolve(fromEnv), portage: false };
  const candidates = systemPaths(opts, env);
  for (const [i, p] of candidates.entries()) {
    try {
      statSync(p);
      // The last candidate is Portage's own.
      return { file: p, portage: i === candidates.length - 1 };
    } catch {
      // try the next one
    }
  }
  return undefined;
}

/** Which configuration path applies, following the lookup order. */
export function findConfigPath(opts: LoadOptions = {}): string {
  const env = opts.env ?? process.env;
  const found = lookup(opts, env);
  if (!found) throw noConfig(opts, env);
  return found.file;
}

function noConfig(opts: LoadOptions, env: NodeJS.ProcessEnv): ConfigError {
  return new ConfigError({ file: systemPaths(opts, env).join(', '), line: 0 }, 'no repos.conf found (use --config PATH or set REPOSNAP_CONFIG)');
}

/** The shipped defaults to read first, if any (see LoadOptions.portageDefaults). */
function defaultsFile(opts: LoadOptions, env: NodeJS.ProcessEnv, portage: boolean): string | undefined {
  let file: string | undefined;
  if (opts.portageDefaults !== undefined) file = opts.portageDefaults ?? undefined;
  else if (env.REPOSNAP_PORTAGE_DEFAULTS !== undefined) file = env.REPOSNAP_PORTAGE_DEFAULTS || undefined;
  else if (portage) file = path.join(builtinDefaults(env).eprefix || '/', 'usr', 'share', 'portage', 'config', 'repos.conf');
  if (file === undefined) return undefined;
  try {
    return statSync(file).isFile() ? file : undefined;
  } catch {
    return undefined;
  }
}

/** Read and validate the configuration. Touches nothing on disk. */
export function loadConfig(opts: LoadOptions = {}): ReposConfig {
  const env = opts.env ?? process.env;
  const found = lookup(opts, env);
  // With no configuration at all, Portage's shipped one alone still defines [gentoo].
  const defaults = defaultsFile(opts, env, found?.portage ?? true);
  if (!found && defaults === undefined) throw noConfig(opts, env);
  const warnings: string[] = [];
  const files = [...(defaults !== undefined ? [defaults] : []), ...(found ? listConfigFiles(found.file, warnings) : [])];
  const doc = emptyDocument();
  for (const file of files) parseIniInto(doc, readConfigFile(file), file);
  const config = interpretRepos(doc, files, { env });
  config.warnings.unshift(...warnings);
  return config;
}

/** Parse configuration text directly (for the library and tests). */
export function parseConfigText(text: string, file = '<string>', env?: NodeJS.ProcessEnv): ReposConfig {
  const doc = emptyDocument();
  parseIniInto(doc, text, file);
  return interpretRepos(doc, [file], env ? { env } : {});
}

/**
 * Read one configuration file, refusing anything that is not a regular
 * file. It is opened without blocking and checked on the open descriptor: a
 * FIFO would otherwise block the read, and with it the event loop and the
 * handling of SIGINT and SIGTERM, for as long as nobody writes to it.
 */
function readConfigFile(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    throw new ConfigError({ file, line: 0 }, `cannot read: ${errnoCode(err) ?? String(err)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ConfigError({ file, line: 0 }, `not a regular file (${kindOf(st)}); refusing to read it`);
    return readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError({ file, line: 0 }, `cannot read: ${errnoCode(err) ?? String(err)}`);
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: import('node:fs').Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  return 'not a file';
}

/**
 * The files of a configuration path: the file itself, or a folder's files
 * as Portage lists them (see the header). The order is that of the names'
 * bytes, depth first, as Portage sorts them.
 */
function listConfigFiles(configPath: string, warnings: string[]): string[] {
  let st;
  try {
    st = statSync(configPath);
  } catch (err) {
    const code = errnoCode(err);
    const why = code === 'ENOENT' ? 'no such file or directory' : `cannot access: ${code ?? String(err)}`;
    throw new ConfigError({ file: configPath, line: 0 }, why);
  }
  if (!st.isDirectory()) return [configPath];
  const out: string[] = [];
  const visit = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      throw new ConfigError({ file: dir, line: 0 }, `cannot read directory: ${errnoCode(err) ?? String(err)}`);
    }
    names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      if (name.startsWith('.') || name.endsWith('~')) continue;
      const p = path.join(dir, name);
      let child;
      try {
        child = statSync(p);
      } catch (err) {
        if (errnoCode(err) === 'EACCES') throw new ConfigError({ file: p, line: 0 }, 'cannot read: EACCES');
        warnings.push(`${p}: skipped: ${errnoCode(err) === 'ENOENT' ? 'a dangling symlink' : `cannot access (${errnoCode(err) ?? String(err)})`}, as Portage skips it`);
        continue;
      }
      if (child.isDirectory()) {
        if (!VCS_DIRS.has(name)) visit(p);
      } else if (child.isFile()) out.push(p);
      else warnings.push(`${p}: skipped: not a regular file, as Portage skips it`);
    }
  };
  visit(configPath);
  return out;
}
