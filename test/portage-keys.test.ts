import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PORTAGE_KEY_ORIGIN, PORTAGE_KEYS } from '../src/config/portage-keys.js';
import { SOURCE_KINDS } from '../src/sources/index.js';

// import.meta.dirname is newer than the Node reposnap supports (20.9).
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The reference list: every key the repos.conf section of Portage's man page
 * (man/portage.5, "Attributes supported in DEFAULT section" and "Attributes
 * supported in sections of repositories") documents, in its order. A key
 * missing from PORTAGE_KEYS would be warned about as unknown although
 * Portage's own documentation names it.
 */
const MAN_PAGE_KEYS = [
  'main-repo',
  'eclass-overrides',
  'force',
  'aliases',
  'auto-sync',
  'clone-depth',
  'location',
  'masters',
  'priority',
  'strict-misc-digests',
  'sync-allow-hardlinks',
  'sync-cvs-repo',
  'sync-depth',
  'sync-git-clone-env',
  'sync-git-clone-extra-opts',
  'sync-git-env',
  'sync-git-pull-env',
  'sync-git-pull-extra-opts',
  'sync-git-verify-commit-signature',
  'sync-git-verify-max-age-days',
  'sync-hooks-only-on-change',
  'sync-mercurial-clone-env',
  'sync-mercurial-clone-extra-opts',
  'sync-mercurial-env',
  'sync-mercurial-pull-env',
  'sync-mercurial-pull-extra-opts',
  'sync-rcu',
  'sync-rcu-store-dir',
  'sync-rcu-spare-snapshots',
  'sync-rcu-ttl-days',
  'sync-type',
  'sync-umask',
  'sync-uri',
  'sync-user',
  'sync-rsync-extra-opts',
  'sync-openpgp-key-package',
  'sync-openpgp-key-path',
  'sync-openpgp-key-refresh',
  'sync-openpgp-key-refresh-retry-count',
  'sync-openpgp-key-refresh-retry-delay-exp-base',
  'sync-openpgp-key-refresh-retry-delay-max',
  'sync-openpgp-key-refresh-retry-delay-mult',
  'sync-openpgp-key-refresh-retry-overall-timeout',
  'sync-openpgp-keyserver',
  'sync-rsync-vcs-ignore',
  'sync-rsync-verify-jobs',
  'sync-rsync-verify-max-age',
  'sync-rsync-verify-metamanifest',
  'sync-webrsync-delta',
  'sync-webrsync-keep-snapshots',
  'sync-webrsync-verify-signature',
  'usepkg-exclude',
  'usepkg-include',
  'volatile',
];

/**
 * Keys Portage's code reads that its man page does not document: `format`,
 * read by RepoConfig (lib/portage/repository/config.py) and marked "Not
 * implemented" there. Every other key RepoConfig reads, and every
 * `module_specific_options` entry of lib/portage/sync/modules/*, is in the
 * man page too.
 */
const CODE_ONLY_KEYS = ['format'];

/** The keys of README.md's configuration table, in its order. */
function readmeKeys(): string[] {
  const text = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = text.slice(text.indexOf('\n## Configuration\n'), text.indexOf('\n## Beside Portage\n'));
  return [...section.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((m) => m[1] as string);
}

/** docs/repos-conf.md's table: key -> [from, reposnap]. */
function docRows(): Map<string, { from: string; what: string }> {
  const text = readFileSync(path.join(root, 'docs/repos-conf.md'), 'utf8');
  const rows = new Map<string, { from: string; what: string }>();
  for (const m of text.matchAll(/^\| `([a-z0-9-]+)` \| ([a-z]+) \| (.*) \|$/gm)) {
    const key = m[1] as string;
    expect(rows.has(key), `${key} has two rows in docs/repos-conf.md`).toBe(false);
    rows.set(key, { from: m[2] as string, what: m[3] as string });
  }
  return rows;
}

describe('the table of Portage repos.conf keys', () => {
  it('covers every key of the man page', () => {
    const missing = MAN_PAGE_KEYS.filter((k) => !PORTAGE_KEYS.has(k));
    expect(missing).toEqual([]);
  });

  it('holds Portage keys only: nothing layout.conf or reposnap defines', () => {
    const portage = new Set([...MAN_PAGE_KEYS, ...CODE_ONLY_KEYS]);
    expect([...PORTAGE_KEYS.keys()].filter((k) => !portage.has(k))).toEqual([]);
    // repo-name is read from metadata/layout.conf, never from repos.conf;
    // sync-git-branch and the tarball keys are reposnap's.
    for (const k of ['repo-name', 'sync-git-branch', 'sync-rcu-backend', 'sync-tarball-sha256', 'sync-verify-command', 'sync-hooks-dir']) {
      expect(PORTAGE_KEYS.has(k), k).toBe(false);
    }
  });

  it('has every key of README.md that Portage also defines', () => {
    const keys = readmeKeys();
    expect(keys.length).toBeGreaterThan(20);
    const portage = new Set([...MAN_PAGE_KEYS, ...CODE_ONLY_KEYS]);
    const missing = keys.filter((k) => portage.has(k) && !PORTAGE_KEYS.has(k));
    expect(missing).toEqual([]);
    // Gentoo's handbook configuration relies on these being acted on.
    for (const k of ['location', 'sync-type', 'sync-uri', 'sync-rcu', 'sync-rsync-verify-metamanifest', 'sync-openpgp-key-path', 'sync-webrsync-verify-signature']) {
      expect(PORTAGE_KEYS.get(k)?.fate, k).toBe('honoured');
    }
  });

  it('says why in one short line for every key it does not honour', () => {
    for (const [key, fate] of PORTAGE_KEYS) {
      if (fate.fate === 'honoured') continue;
      expect(fate.why, key).toMatch(/^\S[^\n]*\S$/);
      expect(fate.why.length, `${key}: ${fate.why}`).toBeLessThanOrEqual(140);
      expect(fate.why, key).not.toMatch(/[.]$/);
    }
  });

  it('knows where every key comes from', () => {
    expect([...PORTAGE_KEY_ORIGIN.keys()].sort()).toEqual([...PORTAGE_KEYS.keys()].sort());
    const modules = new Set(['repo', 'rsync', 'git', 'webrsync', 'mercurial', 'cvs']);
    for (const [key, origin] of PORTAGE_KEY_ORIGIN) {
      expect(modules.has(origin), `${key}: ${origin}`).toBe(true);
      // A module's keys carry its name (sync-rsync-*, sync-git-*...).
      if (origin !== 'repo') expect(key.startsWith(`sync-${origin}-`), key).toBe(true);
    }
  });

  it('does not mark as Portage\'s a key that a reposnap source kind adds', () => {
    // A source kind's key that Portage also defines is Portage's (sync-depth,
    // sync-rsync-extra-opts...) and must then be honoured, not ignored.
    for (const kind of Object.values(SOURCE_KINDS)) {
      for (const key of kind.keys) {
        const fate = PORTAGE_KEYS.get(key);
        if (fate !== undefined) expect(fate.fate, key).toBe('honoured');
      }
    }
  });
});

describe('docs/repos-conf.md', () => {
  it('has a row for every Portage key, saying what the table says', () => {
    const rows = docRows();
    for (const [key, fate] of PORTAGE_KEYS) {
      const row = rows.get(key);
      expect(row, key).toBeDefined();
      if (row === undefined) continue;
      expect(row.from, key).toBe(PORTAGE_KEY_ORIGIN.get(key));
      if (fate.fate === 'honoured') expect(row.what, key).toMatch(/^honoured($| \()/);
      else expect(row.what, key).toBe(`${fate.fate}: ${fate.why}`);
    }
  });

  it('has a row for every key of README.md, and marks the ones Portage does not know as reposnap\'s', () => {
    const rows = docRows();
    for (const key of readmeKeys()) {
      expect(rows.has(key), key).toBe(true);
    }
    for (const [key, row] of rows) {
      if (!PORTAGE_KEYS.has(key)) {
        expect(row.from, key).toBe('reposnap');
        expect(row.what, key).toMatch(/^honoured/);
      }
    }
  });
});
