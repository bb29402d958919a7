/** Opening the configured repositories, by name or all of them. */
import { loadConfig, parseConfigText, type LoadOptions } from './config/load.js';
import type { ReposConfig } from './config/repos.js';
import { ReposnapError } from './errors.js';
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

  get warnings(): string[] {
    return this.config.warnings;
  }

  get(name: string): Repository {
    const repo = this.all.find((r) => r.name === name);
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
