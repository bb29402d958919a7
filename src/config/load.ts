/**
 * Finding and reading repos.conf: a file, or a directory whose `*.conf` files
 * are read in lexical order (later files override earlier ones key by key).
 *
 * Lookup order: an explicit path (--config), then $REPOSNAP_CONFIG, then
 * /etc/reposnap/repos.conf, then /etc/portage/repos.conf.
 */
import { closeSync, constants as fsc, fstatSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, errnoCode } from '../errors.js';
import { emptyDocument, parseIniInto } from './ini.js';
import { interpretRepos, type ReposConfig } from './repos.js';

export const SYSTEM_CONFIG_PATHS = ['/etc/reposnap/repos.conf', '/etc/portage/repos.conf'];

export interface LoadOptions {
  /** An explicit path (file or directory); must exist. */
  path?: string;
  /** Environment to read REPOSNAP_CONFIG from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Fallback paths, for tests (default: SYSTEM_CONFIG_PATHS). */
  systemPaths?: string[];
}

/** Which configuration path applies, following the lookup order. */
export function findConfigPath(opts: LoadOptions = {}): string {
  if (opts.path !== undefined && opts.path !== '') return path.resolve(opts.path);
  const env = opts.env ?? process.env;
  const fromEnv = env.REPOSNAP_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  const candidates = opts.systemPaths ?? SYSTEM_CONFIG_PATHS;
  for (const p of candidates) {
    try {
      statSync(p);
      return p;
    } catch {
      // try the next one
    }
  }
  throw new ConfigError(
    { file: candidates.join(', '), line: 0 },
    'no repos.conf found (use --config PATH or set REPOSNAP_CONFIG)',
  );
}

/** Read and validate the configuration. Touches nothing on disk. */
export function loadConfig(opts: LoadOptions = {}): ReposConfig {
  const configPath = findConfigPath(opts);
  const files = listConfigFiles(configPath);
  const doc = emptyDocument();
  for (const file of files) parseIniInto(doc, readConfigFile(file), file);
  return interpretRepos(doc, files);
}

/** Parse configuration text directly (for the library and tests). */
export function parseConfigText(text: string, file = '<string>'): ReposConfig {
  const doc = emptyDocument();
  parseIniInto(doc, text, file);
  return interpretRepos(doc, [file]);
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

function listConfigFiles(configPath: string): string[] {
  let st;
  try {
    st = statSync(configPath);
  } catch (err) {
    const code = errnoCode(err);
    const why = code === 'ENOENT' ? 'no such file or directory' : `cannot access: ${code ?? String(err)}`;
    throw new ConfigError({ file: configPath, line: 0 }, why);
  }
  if (!st.isDirectory()) return [configPath];
  let names: string[];
  try {
    names = readdirSync(configPath);
  } catch (err) {
    throw new ConfigError({ file: configPath, line: 0 }, `cannot read directory: ${errnoCode(err) ?? String(err)}`);
  }
  // Byte order, as Portage sorts; hidden files and editor backups are skipped.
  return names
    .filter((n) => n.endsWith('.conf') && !n.startsWith('.'))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((n) => path.join(configPath, n))
    .filter((p) => {
      try {
        return !statSync(p).isDirectory();
      } catch {
        return true; // let the read report it
      }
    });
}
