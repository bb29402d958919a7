/** Opening the configured repositories, by name or all of them. */
import { loadConfig, parseConfigText, type LoadOptions } from './config/load.js';
import { emptyDocument, type IniValue } from './config/ini.js';
import { interpretRepos, type ReposConfig, type UnmanagedRepo } from './config/repos.js';
import { ConfigError, ReposnapError } from './errors.js';

/** One repository given as options: repos.conf keys and their values. */
export interface RepoOptions {
  name: string;
  [key: string]: string | number | boolean | undefined;
}
import { Repository } from './repository.js';

export class Repos {
  readonly all: Repository[];

  constructor(readonly config: ReposConfig) {
    this.all = config.repos.map((r) => new Repository(r));
  }

  /** Read repos.conf following the lookup order (see loadConfig). */
  static load(opts: LoadOptions = {}): Repos {
    return new Repos(loadConfig(opts));
  }

  /** From configuration text, for programs that build their own. */
  static fromText(text: string, file?: string): Repos {
    return new Repos(parseConfigText(text, file));
  }

  /**
   * From options instead of a file, validated by the same rules:
   *   Repos.fromOptions([{ name: 'gentoo', location: '/var/db/repos/gentoo',
   *     'sync-type': 'rsync', 'sync-uri': '...', 'sync-rcu': 'yes', ... }])
   * Keys are repos.conf keys; values strings, booleans or numbers.
   */
  static fromOptions(repos: RepoOptions[], defaults: Omit<RepoOptions, 'name'> = {}): Repos {
    const doc = emptyDocument();
    const file = '<options>';
    const put = (target: Map<string, IniValue>, opts: Omit<RepoOptions, 'name'>): void => {
      for (const [k, v] of Object.entries(opts)) {
        if (v === undefined) continue;
        target.set(k.toLowerCase(), { value: typeof v === 'boolean' ? (v ? 'yes' : 'no') : String(v), file, line: 0 });
      }
    };
    put(doc.defaults, defaults);
    for (const { name, ...rest } of repos) {
      if (doc.sections.has(name)) throw new ConfigError({ file, line: 0, section: name }, 'duplicate repository');
      const section = { name, file, line: 0, values: new Map<string, IniValue>() };
      put(section.values, rest);
      doc.sections.set(name, section);
    }
    return new Repos(interpretRepos(doc, [file]));
  }

  get warnings(): string[] {
    return this.config.warnings;
  }

  /** Repos whose sync-type reposnap leaves to Portage, with why. */
  get unmanaged(): UnmanagedRepo[] {
    return this.config.unmanaged;
  }

  get(name: string): Repository {
    const repo = this.all.find((r) => r.name === name);
    const other = this.config.unmanaged.find((r) => r.name === name);
    if (other) throw new ReposnapError('EUSAGE', `repo ${name} is not managed by reposnap: ${other.why}`);
    if (!repo) {
      const known = this.all.map((r) => r.name).join(', ') || 'none';
      throw new ReposnapError('ENOREPO', `no repository named "${name}" in ${this.config.files.join(', ')} (configured: ${known})`);
    }
    return repo;
  }

  /** The named repositories, or with no names every one. */
  select(names: string[]): Repository[] {
    return names.length === 0 ? this.all : names.map((n) => this.get(n));
  }

  /** What `sync` with no names syncs: every repo with a source and auto-sync. */
  autoSync(): Repository[] {
    return this.all.filter((r) => r.config.autoSync && r.config.syncType !== undefined);
  }
}
