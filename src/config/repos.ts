/**
 * repos.conf semantics: turn parsed INI sections into validated repository
 * configurations, the way Portage interprets them, and refuse anything
 * ambiguous with an error that names the file, line and key.
 *
 * Validation is pure: nothing here touches the disk except to resolve
 * symbolic links in parent directories when comparing paths.
 */
import { realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type ConfigPosition } from '../errors.js';
import { SOURCE_KINDS, SYNC_TYPES, type SourceConfig, type SyncType } from '../sources/index.js';
import type { ConfigReader, SourceKind } from '../sources/kind.js';
import { keyFileFor, type KeySource } from '../trust/openpgp.js';
import { DEFAULT_SECTION, type IniDocument, type IniValue } from './ini.js';
import { builtinDefaults, interpolate } from './interpolate.js';
import { PORTAGE_KEY_ORIGIN, PORTAGE_KEYS } from './portage-keys.js';

export { SYNC_TYPES, type SourceConfig, type SyncType } from '../sources/index.js';

export const BACKEND_NAMES = ['auto', 'btrfs', 'reflink', 'hardlink', 'copy', 'overlayfs'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

/**
 * overlayfs stacks: the default bound on a snapshot's layers (its own and
 * those below). Measured in docs/performance-backends.md: what a deeper
 * stack costs a full read against what flattening costs after a sync.
 */
export const OVERLAY_MAX_LAYERS = 8;

/**
 * How updates reach the location, chosen as Portage chooses its repo storage:
 * sync-rcu gives snapshots; otherwise sync-allow-hardlinks gives a hardlinked
 * quarantine copy that is copied back into place; otherwise in-place.
 */
export type StorageMode = 'rcu' | 'quarantine' | 'in-place';

export interface Position {
  file: string;
  line: number;
}

export interface RepoConfig {
  name: string;
  /** Absolute path readers use; in rcu mode a symlink to `<store>/latest`. */
  location: string;
  syncType: SyncType | undefined;
  /** As written, except plain relative paths are made absolute. */
  syncUri: string | undefined;
  autoSync: boolean;
  syncAllowHardlinks: boolean;
  syncRcu: boolean;
  storeDir: string | undefined;
  spareSnapshots: number;
  ttlDays: number;
  backend: BackendName;
  /** After a commit, clone the new snapshot into staging for the next sync. */
  prepareStaging: boolean;
  /** overlayfs: the most layers a snapshot's stack may have; deeper, the next one starts from a flattened layer. */
  overlayMaxLayers: number;
  /** The source's own keys, read by its kind (sources/kind.ts), by sync-type. */
  source: SourceConfig | undefined;
  /** MetaManifest (GLEP 74) verification before commit (sync-rsync-verify-metamanifest). */
  metamanifest: MetaManifestConfig | undefined;
  /** A shell command run in the finished update before commit; non-zero stops it. */
  verifyCommand: string | undefined;
  /** Executables run after a sync (Portage's repo.postsync.d), in lexical order. */
  hooksDir: string | undefined;
  hooksOnlyOnChange: boolean;
  /** The umask fetching runs with (Portage's sync-umask), or undefined to inherit. */
  umask: number | undefined;
  /** Who fetching runs as when reposnap runs as root (Portage's sync-user). */
  syncUser: { user: string; group?: string } | undefined;
  mode: StorageMode;
  /** Where the section starts, and where each key was set. */
  position: Position;
  keyPositions: Record<string, Position>;
}

/** A repo in the configuration that reposnap leaves to Portage. */
export interface UnmanagedRepo {
  name: string;
  location: string | undefined;
  syncType: string;
  /** Why reposnap does not sync it, in one line. */
  why: string;
  position: Position;
}

/** Sync types Portage has that reposnap leaves to it. */
const PORTAGE_ONLY_TYPES = new Set(['mercurial', 'svn', 'cvs', 'laymansync', 'zipfile']);

export interface InterpretOptions {
  /** Environment for the built-in interpolation defaults (EPREFIX, ROOT, PORTAGE_CONFIGROOT); default process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface MetaManifestConfig {
  /** The key file the top-level Manifest must be signed by. */
  key: KeySource;
  /** Hashing threads (sync-rsync-verify-jobs; 0 or unset: one per CPU). */
  jobs: number;
  /** TIMESTAMP older than this many days fails (sync-rsync-verify-max-age; 0: no limit). */
  maxAgeDays: number;
}

export interface ReposConfig {
  /** The files read, in order. */
  files: string[];
  repos: RepoConfig[];
  /** Repos whose sync-type reposnap does not handle: listed, never synced, never in the way of the others. */
  unmanaged: UnmanagedRepo[];
  /** Non-fatal findings, one line each (unknown keys...). */
  warnings: string[];
}

/** Keys reposnap reads. */
const OWN_KEYS = new Set([
  'location',
  'sync-type',
  'sync-uri',
  'auto-sync',
  'sync-allow-hardlinks',
  'sync-rcu',
  'sync-rcu-store-dir',
  'sync-rcu-spare-snapshots',
  'sync-rcu-ttl-days',
  'sync-rcu-backend',
  'sync-rcu-prepare-staging',
  'sync-rcu-overlay-max-layers',
  // and every source kind's own keys (SOURCE_KINDS[type].keys)
  'sync-verify-command',
  'sync-hooks-dir',
  'sync-hooks-only-on-change',
  'sync-umask',
  'sync-user',
]);

/** Portage's repository name rule (a leading '-' would read as an option). */
const REPO_NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_+-]*$/;

/** Validate a parsed repos.conf document. */
export function interpretRepos(doc: IniDocument, files: string[], opts: InterpretOptions = {}): ReposConfig {
  const warnings: string[] = [];
  const unmanaged: UnmanagedRepo[] = [];
  const builtins: Record<string, string | undefined> = { ...builtinDefaults(opts.env ?? process.env) };

  const storeInDefault = doc.defaults.get('sync-rcu-store-dir');
  if (storeInDefault) {
    throw new ConfigError(
      { file: storeInDefault.file, line: storeInDefault.line, section: DEFAULT_SECTION, key: 'sync-rcu-store-dir' },
      'must not be set in [DEFAULT]: every repository needs a store of its own',
    );
  }
  for (const [key, v] of doc.defaults) warnUnknown(warnings, key, v, DEFAULT_SECTION);

  const repos: RepoConfig[] = [];
  for (const section of doc.sections.values()) {
    const name = section.name;
    const sectionPos: ConfigPosition = { file: section.file, line: section.line, section: name };
    if (!REPO_NAME_RE.test(name)) {
      throw new ConfigError(sectionPos, 'invalid repository name (use letters, digits, "_", "+" and "-")');
    }
    // A section's own values override DEFAULT's; every value is read
    // through configparser's interpolation, as Portage reads it.
    const raw = new Map<string, IniValue>(doc.defaults);
    for (const [k, v] of section.values) raw.set(k, v);
    for (const [key, v] of section.values) warnUnknown(warnings, key, v, name);
    const lookup = (key: string): string | undefined => raw.get(key)?.value ?? builtins[key];
    const values = new Map<string, IniValue>();
    for (const [k, v] of raw) values.set(k, { ...v, value: interpolate(v.value, lookup, { file: v.file, line: v.line, section: name, key: k }) });

    const at = (key: string): ConfigPosition => {
      const v = values.get(key);
      return v ? { file: v.file, line: v.line, section: name, key } : { ...sectionPos, key };
    };
    // An empty value is no value, as Portage reads every key: `key =` in a
    // section undoes what DEFAULT says and leaves the key's default.
    const get = (key: string): string | undefined => {
      const v = values.get(key)?.value;
      return v === undefined || v.trim() === '' ? undefined : v;
    };

    const bool = (key: string, dflt: boolean): boolean => {
      const raw = get(key);
      if (raw === undefined) return dflt;
      const v = raw.trim().toLowerCase();
      if (v === 'yes' || v === 'true') return true;
      if (v === 'no' || v === 'false') return false;
      throw new ConfigError(at(key), `expected yes, no, true or false, got "${raw}"`);
    };
    const count = (key: string, dflt: number): number => {
      const raw = get(key);
      if (raw === undefined) return dflt;
      const v = raw.trim();
      if (!/^\d+$/.test(v)) {
        throw new ConfigError(at(key), `expected a whole number >= 0, got "${raw}"`);
      }
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new ConfigError(at(key), `number too large: "${raw}"`);
      return n;
    };
    const pathValue = (key: string): string | undefined => {
      const v = values.get(key);
      if (v === undefined || get(key) === undefined) return undefined;
      const p = v.value.trim();
      if (p.includes('\n')) throw new ConfigError(at(key), 'must be a single line');
      // Not expanded (Portage does not either): it would become a folder
      // named "~" beside the configuration file.
      if (p.startsWith('~')) throw new ConfigError(at(key), `"${p}": ~ is not expanded here; write the path in full`);
      // Relative paths are relative to the file that says them.
      return path.resolve(path.dirname(v.file), p);
    };

    // A sync-type reposnap does not handle: Portage syncs such a repo; it is
    // listed, and nothing else about it is reposnap's business.
    const typeWritten = get('sync-type')?.trim();
    if (typeWritten !== undefined && !(SYNC_TYPES as readonly string[]).includes(typeWritten)) {
      const why = PORTAGE_ONLY_TYPES.has(typeWritten)
        ? `sync-type = ${typeWritten} is synced by Portage (emerge --sync), not by reposnap`
        : `sync-type = ${typeWritten} is not one reposnap knows (it syncs ${SYNC_TYPES.join(', ')})`;
      let where: string | undefined;
      try {
        where = pathValue('location');
      } catch {
        where = undefined;
      }
      unmanaged.push({ name, location: where, syncType: typeWritten, why, position: { file: section.file, line: section.line } });
      continue;
    }

    const location = pathValue('location');
    if (location === undefined) {
      // Left empty, the line that empties it is named (`location =` over a DEFAULT, say).
      throw new ConfigError(values.has('location') ? at('location') : { ...sectionPos, key: 'location' }, `${values.has('location') ? 'empty' : 'missing'} (every repository needs a location)`);
    }
    const systemLocation = systemFolderAt(location);
    if (systemLocation !== undefined) {
      throw new ConfigError(at('location'), `${location} is ${systemLocation}; a sync would replace what is there (use a folder of its own, such as /var/db/repos/${name})`);
    }

    const syncType = typeWritten as SyncType | undefined;
    const kind = syncType === undefined ? undefined : (SOURCE_KINDS[syncType] as SourceKind<SourceConfig>);

    let syncUri = get('sync-uri')?.trim();
    if (syncUri === '') syncUri = undefined;
    if (syncType !== undefined && syncUri === undefined && kind?.defaultUri === undefined) {
      throw new ConfigError(at('sync-uri'), `missing (sync-type = ${syncType} needs a sync-uri)`);
    }
    if (syncUri !== undefined) {
      if (syncUri.includes('\n')) throw new ConfigError(at('sync-uri'), 'must be a single line');
      syncUri = normaliseUri(syncUri, values.get('sync-uri') as IniValue, syncType);
      const wrong = kind?.checkUri?.(syncUri);
      if (wrong !== undefined) throw new ConfigError(at('sync-uri'), wrong);
    }
    syncUri ??= kind?.defaultUri;

    const autoSync = bool('auto-sync', true);
    const syncAllowHardlinks = bool('sync-allow-hardlinks', true);
    const syncRcu = bool('sync-rcu', false);
    const spareSnapshots = count('sync-rcu-spare-snapshots', 1);
    const ttlDays = count('sync-rcu-ttl-days', 7);
    // On by default: the next sync's clone is made after this one, off the
    // critical path (docs/performance.md measures both).
    const prepareStaging = bool('sync-rcu-prepare-staging', true);

    const overlayMaxLayers = count('sync-rcu-overlay-max-layers', OVERLAY_MAX_LAYERS);
    if (overlayMaxLayers < 2 || overlayMaxLayers > 64) {
      throw new ConfigError(at('sync-rcu-overlay-max-layers'), `expected 2 to 64 (a snapshot's own layer and those below it), got ${overlayMaxLayers}`);
    }

    const rawBackend = get('sync-rcu-backend')?.trim() ?? 'auto';
    if (!(BACKEND_NAMES as readonly string[]).includes(rawBackend)) {
      throw new ConfigError(at('sync-rcu-backend'), `unknown backend "${rawBackend}" (known: ${BACKEND_NAMES.join(', ')})`);
    }
    const backend = rawBackend as BackendName;
    if (backend === 'hardlink' && !syncAllowHardlinks) {
      throw new ConfigError(at('sync-rcu-backend'), 'hardlink backend contradicts sync-allow-hardlinks = no');
    }

    const storeDir = pathValue('sync-rcu-store-dir');
    if (syncRcu && storeDir === undefined) {
      throw new ConfigError({ ...at('sync-rcu'), key: 'sync-rcu-store-dir' }, 'missing (sync-rcu = yes needs a store directory)');
    }
    if (storeDir !== undefined) {
      const relation = relate(canonicalParent(storeDir), canonicalParent(location));
      if (relation === 'same') throw new ConfigError(at('sync-rcu-store-dir'), `must not be the location itself (${location})`);
      if (relation === 'inside') throw new ConfigError(at('sync-rcu-store-dir'), `must not be inside the location ${location}`);
      if (relation === 'contains') throw new ConfigError(at('sync-rcu-store-dir'), `must not contain the location ${location}`);
      const systemStore = systemFolderWithin(storeDir);
      if (systemStore !== undefined) {
        throw new ConfigError(at('sync-rcu-store-dir'), `${storeDir} ${systemStore}; a store must be a folder of its own (such as /var/cache/reposnap/${name})`);
      }
    }

    const size = (key: string, dflt: number): number => {
      const raw = get(key);
      if (raw === undefined || raw.trim() === '') return dflt;
      const n = parseSize(raw);
      if (n === undefined || n <= 0) throw new ConfigError(at(key), `expected a size such as 2G, 500M or 1048576, got "${raw}"`);
      return n;
    };
    const source = kind?.parse({ get, at, bool, count, size, path: pathValue });
    // Gentoo's shipped [gentoo] asks for both MetaManifest and commit
    // signatures: a section switched to git is verified by the latter.
    const gitVerified = syncType === 'git' && bool('sync-git-verify-commit-signature', false);
    if (gitVerified && bool('sync-rsync-verify-metamanifest', false)) {
      const v = values.get('sync-rsync-verify-metamanifest') as IniValue;
      warnings.push(`${v.file}:${v.line}: [${name}] sync-rsync-verify-metamanifest: no effect on sync-type = git, whose commits are verified by sync-git-verify-commit-signature instead`);
    }
    const metamanifest = gitVerified ? undefined : readMetaManifest({ get, at, bool, count, size, path: pathValue }, syncType, syncRcu || syncAllowHardlinks);
    if (syncType !== undefined && syncType !== 'git' && bool('sync-git-verify-commit-signature', false)) {
      const v = values.get('sync-git-verify-commit-signature') as IniValue;
      warnings.push(`${v.file}:${v.line}: [${name}] sync-git-verify-commit-signature: ignored: it checks git commits; it verifies nothing for sync-type = ${syncType}`);
    }
    // Gentoo's shipped repos.conf sets it beside sync-type = rsync, for the
    // day the section is switched to webrsync: refusing it would refuse that
    // file, and accepting it in silence would read as verification.
    if (syncType !== undefined && syncType !== 'tarball' && syncType !== 'webrsync' && bool('sync-webrsync-verify-signature', false)) {
      const v = values.get('sync-webrsync-verify-signature') as IniValue;
      warnings.push(`${v.file}:${v.line}: [${name}] sync-webrsync-verify-signature: ignored: it checks snapshot tarballs (sync-type = webrsync or tarball); it verifies nothing for sync-type = ${syncType}`);
    }
    portageKeyFates(values, syncType, name, warnings);

    const verifyCommand = get('sync-verify-command')?.trim() || undefined;
    const hooksDir = values.has('sync-hooks-dir') ? pathValue('sync-hooks-dir') : undefined;
    const hooksOnlyOnChange = bool('sync-hooks-only-on-change', false);
    let umask: number | undefined;
    const rawUmask = get('sync-umask')?.trim();
    if (rawUmask !== undefined && rawUmask !== '') {
      if (!/^[0-7]{1,4}$/.test(rawUmask)) throw new ConfigError(at('sync-umask'), `expected an octal umask such as 022, got "${rawUmask}"`);
      umask = parseInt(rawUmask, 8);
    }
    let syncUser: RepoConfig['syncUser'];
    const rawUser = get('sync-user')?.trim();
    if (rawUser !== undefined && rawUser !== '') {
      const m = /^([A-Za-z0-9_.][A-Za-z0-9_.-]*\$?)(?::([A-Za-z0-9_.][A-Za-z0-9_.-]*))?$/.exec(rawUser);
      if (!m) throw new ConfigError(at('sync-user'), `expected user or user:group, got "${rawUser}"`);
      syncUser = { user: m[1] as string, ...(m[2] ? { group: m[2] } : {}) };
    }

    const keyPositions: Record<string, Position> = {};
    for (const [k, v] of values) keyPositions[k] = { file: v.file, line: v.line };

    repos.push({
      name,
      location,
      syncType,
      syncUri,
      autoSync,
      syncAllowHardlinks,
      syncRcu,
      storeDir,
      spareSnapshots,
      ttlDays,
      backend,
      prepareStaging,
      overlayMaxLayers,
      source,
      metamanifest,
      verifyCommand,
      hooksDir,
      hooksOnlyOnChange,
      umask,
      syncUser,
      mode: syncRcu ? 'rcu' : syncAllowHardlinks ? 'quarantine' : 'in-place',
      position: { file: section.file, line: section.line },
      keyPositions,
    });
  }

  checkAcrossRepos(repos);
  return { files, repos, unmanaged, warnings };
}

/** Bytes in "2G", "500M", "64KiB", "1048576" (binary units), or undefined. */
export function parseSize(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(raw);
  if (!m) return undefined;
  const n = Number(m[1]) * 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
  return Number.isSafeInteger(Math.floor(n)) ? Math.floor(n) : undefined;
}

const SOURCE_KEYS = new Set(Object.values(SOURCE_KINDS).flatMap((k) => [...k.keys]));

function warnUnknown(warnings: string[], key: string, v: IniValue, section: string): void {
  if (OWN_KEYS.has(key) || SOURCE_KEYS.has(key) || PORTAGE_KEYS.has(key)) return;
  warnings.push(`${v.file}:${v.line}: [${section}] ${key}: unknown key (neither Portage nor reposnap has it: a typo?), ignored`);
}

/** Values of sync-openpgp-key-refresh that ask for no refresh (Portage's false-nowarn included). */
const NO_REFRESH = new Set(['no', 'false', 'false-nowarn']);

/**
 * What reposnap does with the Portage keys a repo sets (config/portage-keys.ts):
 * a key that applies to this repo's sync-type (or to every repo) and that
 * reposnap does not act on is a warning saying why; one whose value asks
 * for what reposnap cannot do is a configuration error. Keys of another
 * sync module are not this repo's business, as they are not Portage's.
 */
function portageKeyFates(values: Map<string, IniValue>, syncType: string | undefined, section: string, warnings: string[]): void {
  const refresh = values.get('sync-openpgp-key-refresh')?.value.trim().toLowerCase();
  let refreshWarned = false;
  for (const [key, v] of values) {
    const fate = PORTAGE_KEYS.get(key);
    if (!fate || fate.fate === 'honoured' || v.value.trim() === '') continue;
    const origin = PORTAGE_KEY_ORIGIN.get(key);
    if (origin !== 'repo' && origin !== syncType) continue;
    const where = `${v.file}:${v.line}: [${section}] ${key}`;
    if (fate.fate === 'refused') {
      // volatile only asks something of a git sync, and only when it is yes.
      if (key === 'volatile' && (syncType !== 'git' || !/^(yes|true)$/i.test(v.value.trim()))) continue;
      throw new ConfigError({ file: v.file, line: v.line, section, key }, fate.why);
    }
    if (key.startsWith('sync-openpgp-key')) {
      // One line for the whole refresh family, and none when refresh is off.
      if (key !== 'sync-openpgp-key-path' && !NO_REFRESH.has(refresh ?? '') && !refreshWarned) {
        refreshWarned = true;
        warnings.push(`${where}: not done: ${fate.why}`);
      }
      continue;
    }
    if (origin === 'repo' && !key.startsWith('sync-')) continue; // read when the repository is used, not synced
    warnings.push(`${where}: no effect: ${fate.why}`);
  }
}

/**
 * Make plain relative paths absolute, and file:// URIs absolute paths (git
 * keeps the file:// form: a shallow fetch needs it).
 */
function normaliseUri(given: string, v: IniValue, type: SyncType | undefined): string {
  // A scheme is read in any case (RFC 3986), as rsync reads RSYNC://; the
  // sources compare it in lower case, so that SSH://host/path is not taken
  // for a host named "SSH" nor RSYNC:// miss what a daemon source gets.
  const scheme = /^[a-z][a-z0-9+.-]*(?=:\/\/)/i.exec(given)?.[0];
  const uri = scheme === undefined ? given : `${scheme.toLowerCase()}${given.slice(scheme.length)}`;
  if (uri.startsWith('file://')) {
    const p = path.resolve(path.dirname(v.file), decodeURIComponent(uri.slice('file://'.length)));
    return type === 'git' ? `file://${p}` : p;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) return uri; // rsync://, ssh://...
  if (/^[^/]*:/.test(uri)) return uri; // host:path (rsync over ssh)
  return path.resolve(path.dirname(v.file), uri);
}

/**
 * Resolve symlinks in the parent directories of `p`, but not `p` itself:
 * an RCU location is a symlink into its own store, and following it would
 * make every store look like it contains its location.
 */
export function canonicalParent(p: string): string {
  const parent = path.dirname(p);
  let existing = parent;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync(existing), ...rest.reverse(), path.basename(p));
    } catch {
      const up = path.dirname(existing);
      if (up === existing) return p;
      rest.push(path.basename(existing));
      existing = up;
    }
  }
}

/**
 * Folders the system itself lives in. A location is replaced by a sync (in
 * RCU mode by a symlink, otherwise its content by upstream's), and a store
 * is created, cleaned and, on revert, removed: neither may be one of these,
 * nor (a store) contain one.
 */
const SYSTEM_FOLDERS = [
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt', '/opt',
  '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var',
  '/usr/bin', '/usr/include', '/usr/lib', '/usr/lib64', '/usr/libexec', '/usr/local', '/usr/sbin', '/usr/share', '/usr/src',
  '/var/cache', '/var/db', '/var/db/repos', '/var/lib', '/var/log', '/var/spool', '/var/tmp', '/var/run', '/var/mail',
  '/etc/portage', '/etc/portage/repos.conf',
];

/** "the filesystem root" or "a system folder" when `p` (or what it resolves to) is one. */
function systemFolderAt(p: string): string | undefined {
  for (const candidate of new Set([path.resolve(p), canonicalParent(p)])) {
    if (candidate === '/') return 'the filesystem root';
    if (SYSTEM_FOLDERS.includes(candidate)) return 'a system folder';
  }
  return undefined;
}

/** Why a store at `p` would swallow a system folder: it is one, or contains one. */
function systemFolderWithin(p: string): string | undefined {
  const at = systemFolderAt(p);
  if (at !== undefined) return `is ${at}`;
  for (const candidate of new Set([path.resolve(p), canonicalParent(p)])) {
    const inside = SYSTEM_FOLDERS.find((f) => f.startsWith(`${candidate}/`));
    if (inside !== undefined) return `contains the system folder ${inside}`;
  }
  return undefined;
}

function relate(a: string, b: string): 'same' | 'inside' | 'contains' | 'apart' {
  if (a === b) return 'same';
  if (a.startsWith(b.endsWith('/') ? b : `${b}/`)) return 'inside';
  if (b.startsWith(a.endsWith('/') ? a : `${a}/`)) return 'contains';
  return 'apart';
}

function checkAcrossRepos(repos: RepoConfig[]): void {
  const stores = repos
    .filter((r) => r.storeDir !== undefined)
    .map((r) => ({ repo: r, store: canonicalParent(r.storeDir as string) }));
  for (let i = 0; i < stores.length; i++) {
    const a = stores[i];
    if (!a) continue;
    const pos = a.repo.keyPositions['sync-rcu-store-dir'] as Position;
    const here = { ...pos, section: a.repo.name, key: 'sync-rcu-store-dir' };
    for (let j = 0; j < i; j++) {
      const b = stores[j];
      if (!b) continue;
      const rel = relate(a.store, b.store);
      if (rel === 'same') throw new ConfigError(here, `store directory already used by repository "${b.repo.name}"`);
      if (rel !== 'apart') {
        throw new ConfigError(here, `store directory nests with the store of repository "${b.repo.name}" (${b.repo.storeDir})`);
      }
    }
    for (const other of repos) {
      if (other === a.repo) continue;
      const rel = relate(a.store, canonicalParent(other.location));
      if (rel !== 'apart') {
        throw new ConfigError(here, `store directory overlaps the location of repository "${other.name}" (${other.location})`);
      }
    }
  }
}

/** Source types whose tree a MetaManifest can cover (git has its own signatures). */
const TREE_TYPES = new Set(['rsync', 'local', 'tarball', 'webrsync']);

/**
 * sync-rsync-verify-metamanifest and its companions. Portage reads them for
 * rsync only; reposnap verifies every source that fills a tree. Asked for
 * where it cannot be done (git, or in-place mode, where readers would see
 * the tree before it is checked), it is a configuration error, never a
 * tree published unverified.
 */
function readMetaManifest(r: ConfigReader, syncType: string | undefined, staged: boolean): MetaManifestConfig | undefined {
  const key = 'sync-rsync-verify-metamanifest';
  if (!r.bool(key, false)) return undefined;
  if (syncType !== undefined && !TREE_TYPES.has(syncType)) {
    throw new ConfigError(r.at(key), `MetaManifest verification is for trees fetched by rsync, local, tarball or webrsync; for sync-type = ${syncType} use ${syncType === 'git' ? 'sync-git-verify-commit-signature' : 'a source that can be verified'} (or set it to no)`);
  }
  if (!staged) {
    throw new ConfigError(r.at(key), 'cannot verify in place (readers would see the tree before it is checked): set sync-rcu = yes, or sync-allow-hardlinks = yes for a quarantine');
  }
  const jobs = r.count('sync-rsync-verify-jobs', 0);
  return {
    key: keyFileFor(r, key),
    jobs: jobs > 0 ? jobs : os.availableParallelism(),
    maxAgeDays: r.count('sync-rsync-verify-max-age', 0),
  };
}
