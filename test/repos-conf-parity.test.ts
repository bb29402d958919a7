/**
 * repos.conf read as Portage reads it: a differential suite. Each fixture is
 * an input as a user has it on disk (Portage's shipped defaults file, the
 * user's file or folder, the environment) with the values Portage produces
 * for it, written down from Portage's code (RepoConfigLoader in
 * lib/portage/repository/config.py, read_configs in util/configparser.py,
 * _recursive_file_list in util/__init__.py) and Python's configparser
 * (strict mode, BasicInterpolation). Portage is not needed to run it.
 *
 * `portage` is what Portage reads. Where reposnap reads the same, the test
 * checks it does; where reposnap deliberately differs, `differs` says how
 * and why (docs/repos-conf.md lists these), and the test checks that.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import type { ReposConfig } from '../src/config/repos.js';
import { PORTAGE_SHIPPED_REPOS_CONF as SHIPPED, rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

/** What Portage makes of one repo; unset keys are left out (reposnap's default applies). */
interface PortageRepo {
  location?: string;
  'sync-type'?: string;
  'sync-uri'?: string;
  'sync-rcu'?: boolean;
  'sync-rcu-ttl-days'?: number;
  'sync-rcu-spare-snapshots'?: number;
  'auto-sync'?: boolean;
}

interface Fixture {
  /** The row of the comparison this fixture stands for. */
  title: string;
  /** Files under the fixture's root; `@ROOT@` in their text is that root. A value of { symlink } makes a symlink. */
  files: Record<string, string | { symlink: string }>;
  /** The user's configuration, relative to the root (a file or a folder). Absent: none at all. */
  config?: string;
  /** Portage's shipped defaults, relative to the root. */
  defaults?: string;
  env?: Record<string, string>;
  /** What Portage reads: repos by name, repos it leaves to other sync modules... or that it refuses the file. */
  portage: { repos: Record<string, PortageRepo>; otherTypes?: Record<string, string> } | { refuses: string };
  /** How reposnap differs, deliberately (and must): an error matching this, instead of Portage's reading. */
  differs?: { error: RegExp; why: string };
}


const GENTOO_RCU = `[gentoo]\nlocation = /var/db/repos/gentoo\nsync-type = rsync\nsync-uri = rsync://rsync.gentoo.org/gentoo-portage\nsync-rcu = yes\nsync-rcu-store-dir = /var/cache/reposnap/gentoo\n`;

const FIXTURES: Fixture[] = [
  {
    title: 'repos with sync-types reposnap does not handle beside the ones it does',
    files: {
      'repos.conf': `${GENTOO_RCU}
[hg]\nlocation = /var/db/repos/hg\nsync-type = mercurial\nsync-uri = https://hg.example.org/hg\n
[svn]\nlocation = /var/db/repos/svn\nsync-type = svn\nsync-uri = svn://example.org/svn\n
[cvs]\nlocation = /var/db/repos/cvs\nsync-type = cvs\nsync-uri = :pserver:anon@example.org:/cvs\nsync-cvs-repo = overlay\n
[layman]\nlocation = /var/db/repos/layman\nsync-type = laymansync\n
[odd]\nlocation = /var/db/repos/odd\nsync-type = carrier-pigeon\n
[web]\nlocation = /var/db/repos/web\nsync-type = webrsync\n`,
    },
    config: 'repos.conf',
    // Portage loads every one (an unknown type only fails when it is synced).
    portage: {
      repos: {
        gentoo: { location: '/var/db/repos/gentoo', 'sync-type': 'rsync', 'sync-rcu': true },
        web: { location: '/var/db/repos/web', 'sync-type': 'webrsync' },
      },
      otherTypes: { hg: 'mercurial', svn: 'svn', cvs: 'cvs', layman: 'laymansync', odd: 'carrier-pigeon' },
    },
  },
  {
    title: '%(EPREFIX)s, %(EROOT)s, %(ROOT)s, %(PORTAGE_CONFIGROOT)s and %(other-key)s in values',
    files: {
      'repos.conf': `[DEFAULT]\nbase = /srv/repos\n
[a]\nlocation = %(EPREFIX)s/var/db/repos/a\n
[b]\nlocation = %(EROOT)svar/db/repos/b\n
[c]\nlocation = %(ROOT)svar/db/repos/c\n
[d]\nlocation = %(PORTAGE_CONFIGROOT)svar/db/repos/d\n
[e]\nlocation = %(base)s/e\nsync-type = rsync\nsync-uri = rsync://example.org/%(name)s\nname = e-overlay\n`,
    },
    config: 'repos.conf',
    env: { EPREFIX: '/prefix', ROOT: '/target' },
    // EROOT = ROOT + EPREFIX; PORTAGE_CONFIGROOT defaults to EPREFIX.
    portage: {
      repos: {
        a: { location: '/prefix/var/db/repos/a' },
        b: { location: '/target/prefix/var/db/repos/b' },
        c: { location: '/target/var/db/repos/c' },
        d: { location: '/prefix/var/db/repos/d' },
        e: { location: '/srv/repos/e', 'sync-uri': 'rsync://example.org/e-overlay' },
      },
    },
  },
  {
    title: '%% is a literal %',
    files: { 'repos.conf': `[x]\nlocation = /var/db/repos/x\nsync-type = rsync\nsync-uri = rsync://example.org/a%%20b\n` },
    config: 'repos.conf',
    portage: { repos: { x: { 'sync-uri': 'rsync://example.org/a%20b' } } },
  },
  {
    title: 'a lone % refuses the file',
    files: { 'repos.conf': `[x]\nlocation = /var/db/repos/x\nsync-type = rsync\nsync-uri = rsync://example.org/a%20b\n` },
    config: 'repos.conf',
    // configparser: InterpolationSyntaxError; Portage reads no repos.conf at all then.
    portage: { refuses: 'lone %' },
  },
  {
    title: 'a repos.conf folder: files without .conf, .conf.bak, a subfolder; not dot files, ~ backups or VCS folders',
    files: {
      'repos.conf/10-gentoo.conf': GENTOO_RCU,
      'repos.conf/gentoo.conf.bak': '[bak]\nlocation = /var/db/repos/bak\n',
      'repos.conf/sub/overlay.conf': '[overlay]\nlocation = /var/db/repos/overlay\n',
      'repos.conf/zz-local': '[local]\nlocation = /var/db/repos/local\n',
      'repos.conf/.hidden.conf': '[hidden]\nlocation = /var/db/repos/hidden\n',
      'repos.conf/zz-local~': '[backup]\nlocation = /var/db/repos/backup\n',
      'repos.conf/.git/config.conf': '[git]\nlocation = /var/db/repos/git\n',
      'repos.conf/CVS/x.conf': '[cvsdir]\nlocation = /var/db/repos/cvsdir\n',
    },
    config: 'repos.conf',
    portage: {
      repos: {
        gentoo: { location: '/var/db/repos/gentoo' },
        bak: { location: '/var/db/repos/bak' },
        overlay: { location: '/var/db/repos/overlay' },
        local: { location: '/var/db/repos/local' },
      },
    },
  },
  {
    title: 'a folder read in lexical order, subfolders in their place: later files override earlier ones key by key',
    files: {
      'repos.conf/a.conf': '[x]\nlocation = /from/a\n',
      'repos.conf/b/z.conf': '[x]\nlocation = /from/b-z\n',
      'repos.conf/c.conf': '[y]\nlocation = /from/c\n',
    },
    config: 'repos.conf',
    portage: { repos: { x: { location: '/from/b-z' }, y: { location: '/from/c' } } },
  },
  {
    title: 'a dangling symlink in the folder is skipped',
    files: { 'repos.conf/gentoo.conf': GENTOO_RCU, 'repos.conf/gone.conf': { symlink: '/nonexistent/gone.conf' } },
    config: 'repos.conf',
    portage: { repos: { gentoo: { location: '/var/db/repos/gentoo' } } },
  },
  {
    title: "a user file that only adds keys to [gentoo], over Portage's shipped repos.conf",
    files: {
      'usr/share/portage/config/repos.conf': SHIPPED,
      // The shipped [gentoo] verifies with this key file, which Gentoo installs beside it.
      'usr/share/openpgp-keys/gentoo-release.asc': 'a key\n',
      'etc/portage/repos.conf': '[gentoo]\nsync-rcu = yes\nsync-rcu-store-dir = /var/cache/reposnap/gentoo\n',
    },
    config: 'etc/portage/repos.conf',
    defaults: 'usr/share/portage/config/repos.conf',
    env: { EPREFIX: '@ROOT@' },
    portage: {
      repos: {
        gentoo: { location: '@ROOT@/var/db/repos/gentoo', 'sync-type': 'rsync', 'sync-uri': 'rsync://rsync.gentoo.org/gentoo-portage', 'sync-rcu': true, 'auto-sync': true },
      },
    },
  },
  {
    title: 'no user repos.conf at all: the shipped one still defines [gentoo]',
    files: { 'usr/share/portage/config/repos.conf': SHIPPED, 'usr/share/openpgp-keys/gentoo-release.asc': 'a key\n' },
    defaults: 'usr/share/portage/config/repos.conf',
    env: { EPREFIX: '@ROOT@' },
    portage: { repos: { gentoo: { location: '@ROOT@/var/db/repos/gentoo', 'sync-type': 'rsync', 'sync-rcu': false } } },
  },
  {
    title: 'sync-rcu-ttl-days = and sync-rcu-spare-snapshots = left empty undo a DEFAULT',
    files: {
      'repos.conf': `[DEFAULT]\nsync-rcu-ttl-days = 30\nsync-rcu-spare-snapshots = 9\n
${GENTOO_RCU}sync-rcu-ttl-days =\nsync-rcu-spare-snapshots =\n
[other]\nlocation = /var/db/repos/other\n`,
    },
    config: 'repos.conf',
    // Empty is unset in Portage's RepoConfig, so its default applies (reposnap's: 7 days, 1 spare).
    portage: {
      repos: {
        gentoo: { 'sync-rcu-ttl-days': 7, 'sync-rcu-spare-snapshots': 1 },
        other: { 'sync-rcu-ttl-days': 30, 'sync-rcu-spare-snapshots': 9 },
      },
    },
  },
  {
    title: '[gentoo] # main tree is section gentoo',
    files: { 'repos.conf': GENTOO_RCU.replace('[gentoo]', '[gentoo] # main tree') },
    config: 'repos.conf',
    portage: { repos: { gentoo: { location: '/var/db/repos/gentoo' } } },
  },
  {
    title: 'a relative location (deliberately different: resolved against the file that says it)',
    files: { 'etc/repos.conf': '[x]\nlocation = repos/x\n' },
    config: 'etc/repos.conf',
    // Portage keeps "repos/x" and resolves it against its working directory.
    portage: { repos: { x: { location: 'repos/x' } } },
    differs: { error: /^$/, why: 'relative paths name the same folder wherever reposnap runs' },
  },
  {
    title: 'a boolean Portage reads as false (deliberately different: refused)',
    files: { 'repos.conf': '[x]\nlocation = /var/db/repos/x\nsync-rcu = 1\n' },
    config: 'repos.conf',
    // Portage: sync-rcu is true only for "true" or "yes" (any case); "1" is false.
    portage: { repos: { x: { 'sync-rcu': false } } },
    differs: { error: /sync-rcu: expected yes, no, true or false, got "1"/, why: 'a value that reads as "no" while the user meant "yes" would sync in place' },
  },
];

async function materialise(root: string, files: Fixture['files']): Promise<void> {
  for (const [rel, body] of Object.entries(files)) {
    const p = path.join(root, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    if (typeof body === 'string') await fs.writeFile(p, body.replaceAll('@ROOT@', root));
    else await fs.symlink(body.symlink, p);
  }
}

function load(root: string, f: Fixture): ReposConfig {
  return loadConfig({
    ...(f.config !== undefined ? { path: path.join(root, f.config) } : { systemPaths: [path.join(root, 'etc/reposnap/repos.conf'), path.join(root, 'etc/portage/repos.conf')] }),
    portageDefaults: f.defaults !== undefined ? path.join(root, f.defaults) : null,
    env: Object.fromEntries(Object.entries(f.env ?? {}).map(([k, v]) => [k, v.replaceAll('@ROOT@', root)])),
  });
}

/** What reposnap read, in Portage's terms, for the keys a fixture names. */
function asPortage(cfg: ReposConfig, name: string, keys: Array<keyof PortageRepo>): PortageRepo {
  const r = cfg.repos.find((x) => x.name === name);
  if (!r) throw new Error(`reposnap has no managed repo ${name}`);
  const all: PortageRepo = {
    location: r.location,
    ...(r.syncType !== undefined ? { 'sync-type': r.syncType } : {}),
    ...(r.syncUri !== undefined ? { 'sync-uri': r.syncUri } : {}),
    'sync-rcu': r.syncRcu,
    'sync-rcu-ttl-days': r.ttlDays,
    'sync-rcu-spare-snapshots': r.spareSnapshots,
    'auto-sync': r.autoSync,
  };
  return Object.fromEntries(keys.map((k) => [k, all[k]]));
}

describe('repos.conf read as Portage reads it', () => {
  it.each(FIXTURES.map((f) => [f.title, f] as const))('%s', async (_title, f) => {
    const root = tmpdir('parity');
    await materialise(root, f.files);
    if ('refuses' in f.portage) {
      expect(() => load(root, f)).toThrow(/a lone % .*write %% for a literal %/);
      return;
    }
    if (f.differs && f.differs.error.source !== '^$') {
      expect(() => load(root, f)).toThrow(f.differs.error);
      return;
    }
    const cfg = load(root, f);
    for (const [name, written] of Object.entries(f.portage.repos)) {
      const want = JSON.parse(JSON.stringify(written).replaceAll('@ROOT@', root)) as PortageRepo;
      const keys = Object.keys(want) as Array<keyof PortageRepo>;
      const got = asPortage(cfg, name, keys);
      if (f.differs) {
        // Relative paths: Portage keeps them as written, reposnap anchors them at the file.
        expect(got.location).toBe(path.resolve(path.dirname(path.join(root, f.config as string)), want.location as string));
      } else expect(got, name).toEqual(want);
    }
    const managed = cfg.repos.map((r) => r.name).sort();
    expect(managed).toEqual(Object.keys(f.portage.repos).sort());
    expect(Object.fromEntries(cfg.unmanaged.map((u) => [u.name, u.syncType]))).toEqual(f.portage.otherTypes ?? {});
  });
});

describe('repos reposnap leaves to Portage never stand in the way', () => {
  it('a mercurial overlay beside an RCU [gentoo]: status lists it with why, sync syncs [gentoo], naming the overlay is exit 2', async () => {
    const dir = tmpdir('unmanaged');
    await writeTree(path.join(dir, 'upstream'), { 'profiles/repo_name': 'gentoo\n', 'a/b': '1\n' });
    const conf = await writeConf(
      dir,
      `${rcuConf(dir).replace('[test]', '[gentoo]')}\n[portage-overlay]\nlocation = ${dir}/overlay\nsync-type = mercurial\nsync-uri = https://hg.example.org/overlay\n`,
    );
    const status = await runCli(['-c', conf, 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/portage-overlay {2}\(not managed by reposnap\)\n.*\n {2}why {8}sync-type = mercurial is synced by Portage \(emerge --sync\), not by reposnap/);
    const json = JSON.parse((await runCli(['-c', conf, 'status', '--json'])).stdout);
    expect(json.results.unmanaged).toEqual([expect.objectContaining({ name: 'portage-overlay', syncType: 'mercurial' })]);
    const sync = await runCli(['-c', conf, 'sync']);
    expect(sync.stderr).toBe('');
    expect(sync.code).toBe(0);
    expect(await fs.readFile(path.join(dir, 'repo', 'a/b'), 'utf8')).toBe('1\n');
    const named = await runCli(['-c', conf, 'sync', 'portage-overlay']);
    expect(named.code).toBe(2);
    expect(named.stderr).toBe('reposnap: repo portage-overlay is not managed by reposnap: sync-type = mercurial is synced by Portage (emerge --sync), not by reposnap\n');
  });
});

describe("Portage's reading order without --config", () => {
  it('finds $PORTAGE_CONFIGROOT/etc/portage/repos.conf and reads it over $EPREFIX/usr/share/portage/config/repos.conf', async () => {
    const root = tmpdir('configroot');
    await materialise(root, {
      'usr/share/portage/config/repos.conf': SHIPPED,
      'usr/share/openpgp-keys/gentoo-release.asc': 'a key\n',
      'etc/portage/repos.conf/gentoo.conf': '[gentoo]\nsync-rcu = yes\nsync-rcu-store-dir = /var/cache/reposnap/gentoo\n',
    });
    const cfg = loadConfig({ env: { EPREFIX: root, PORTAGE_CONFIGROOT: root }, systemPaths: undefined });
    expect(cfg.files).toEqual([path.join(root, 'usr/share/portage/config/repos.conf'), path.join(root, 'etc/portage/repos.conf/gentoo.conf')]);
    expect(cfg.repos.map((r) => [r.name, r.location, r.mode, r.metamanifest?.key.file])).toEqual([
      ['gentoo', path.join(root, 'var/db/repos/gentoo'), 'rcu', path.join(root, 'usr/share/openpgp-keys/gentoo-release.asc')],
    ]);
    // The shipped file's key-refresh keys are said once, not once per key.
    expect(cfg.warnings.filter((w) => w.includes('refreshes keys'))).toHaveLength(1);
  });
});
