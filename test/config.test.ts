import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { findConfigPath, loadConfig, parseConfigText } from '../src/config/load.js';
import { ConfigError } from '../src/errors.js';
import { isRoot, readTree, runCli, tmpdir, writeConf } from './helpers.js';

const base = (extra = ''): string => `[gentoo]
location = /var/db/repos/gentoo
sync-type = rsync
sync-uri = rsync://rsync.example.org/gentoo-portage
${extra}`;

function configError(text: string): ConfigError {
  try {
    parseConfigText(text, '/etc/portage/repos.conf');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('repos.conf parsing (configparser semantics)', () => {
  it('reads sections, DEFAULT inheritance, case-insensitive keys and defaults', () => {
    const cfg = parseConfigText(`[DEFAULT]
sync-rcu-ttl-days = 3
SYNC-ALLOW-HARDLINKS = no

[gentoo]
Location = /var/db/repos/gentoo
sync-type: rsync
sync-uri = rsync://example.org/gentoo
`);
    const r = cfg.repos[0];
    expect(r?.name).toBe('gentoo');
    expect(r?.location).toBe('/var/db/repos/gentoo');
    expect(r?.syncType).toBe('rsync');
    expect(r?.ttlDays).toBe(3);
    expect(r?.syncAllowHardlinks).toBe(false);
    expect(r?.autoSync).toBe(true);
    expect(r?.syncRcu).toBe(false);
    expect(r?.spareSnapshots).toBe(1);
    expect(r?.backend).toBe('auto');
    expect(r?.mode).toBe('in-place');
  });

  it('keeps # inside values and treats #/; as comments only at line start', () => {
    const cfg = parseConfigText(`# a comment
; another
[gentoo]
location = /var/db/repos/gentoo
  # an indented comment line is a comment too
sync-type = rsync
sync-uri = rsync://example.org/gentoo#frag;x
`);
    expect(cfg.repos[0]?.syncUri).toBe('rsync://example.org/gentoo#frag;x');
  });

  it('joins indented continuation lines', () => {
    const cfg = parseConfigText(`[gentoo]
location = /var/db/repos/gentoo
sync-type = rsync
sync-uri = rsync://example.org/gentoo
sync-rsync-extra-opts = --exclude=/distfiles
    --exclude='/local dir'
`);
    expect(cfg.repos[0]?.source).toEqual({ type: 'rsync', extraOpts: ['--exclude=/distfiles', '--exclude=/local dir'] });
  });

  it('accepts yes/no/true/false in any case', () => {
    for (const [v, want] of [
      ['yes', true],
      ['True', true],
      ['NO', false],
      ['false', false],
    ] as const) {
      expect(parseConfigText(base(`auto-sync = ${v}`)).repos[0]?.autoSync).toBe(want);
    }
  });

  it('chooses the storage mode as Portage does', () => {
    const mode = (extra: string) => parseConfigText(base(extra)).repos[0]?.mode;
    expect(mode('sync-rcu = yes\nsync-rcu-store-dir = /var/cache/rcu/gentoo')).toBe('rcu');
    expect(mode('')).toBe('quarantine');
    expect(mode('sync-allow-hardlinks = no')).toBe('in-place');
  });

  it('warns about unknown keys, typos under Portage\'s prefixes included, and about Portage keys that check nothing here', () => {
    const cfg = parseConfigText(base('priority = 50\nsync-git-verify-commit-signature = yes\nfrobnicate = 1\nsync-git-branh = main\nsync-rsync-extra-opt = -v'), 'r.conf');
    expect(cfg.warnings).toEqual([
      'r.conf:7: [gentoo] frobnicate: unknown key (neither Portage nor reposnap has it: a typo?), ignored',
      'r.conf:8: [gentoo] sync-git-branh: unknown key (neither Portage nor reposnap has it: a typo?), ignored',
      'r.conf:9: [gentoo] sync-rsync-extra-opt: unknown key (neither Portage nor reposnap has it: a typo?), ignored',
      'r.conf:6: [gentoo] sync-git-verify-commit-signature: ignored: it checks git commits; it verifies nothing for sync-type = rsync',
    ]);
  });

  it('refuses Portage keys whose value asks for what reposnap cannot do, on the sync-type they belong to', () => {
    const git = (extra: string): string => `[o]\nlocation = /var/db/repos/o\nsync-type = git\nsync-uri = https://example.org/o.git\n${extra}\n`;
    expect(() => parseConfigText(git('volatile = yes'), 'r.conf')).toThrow(/r\.conf:5: \[o\] volatile: volatile = yes asks a git sync to keep local changes/);
    expect(() => parseConfigText(git('sync-git-clone-extra-opts = --branch stable'), 'r.conf')).toThrow(/\[o\] sync-git-clone-extra-opts: /);
    // On rsync, Portage ignores both too.
    expect(parseConfigText(base('volatile = yes\nsync-git-clone-extra-opts = --branch stable'), 'r.conf').repos).toHaveLength(1);
    // A refresh turned off asks for nothing.
    expect(parseConfigText(base('sync-openpgp-key-refresh = false-nowarn\nsync-openpgp-key-refresh-retry-count = 40'), 'r.conf').warnings).toEqual([]);
  });

  it('reads a URI scheme in any case, and keeps the rest as written', () => {
    const conf = (uri: string, type = 'rsync'): string | undefined =>
      parseConfigText(`[x]\nlocation = /var/db/repos/x\nsync-type = ${type}\nsync-uri = ${uri}\n`, 'r.conf').repos[0]?.syncUri;
    expect(conf('RSYNC://Example.org/Gentoo-Portage')).toBe('rsync://Example.org/Gentoo-Portage');
    expect(conf('Ssh://User@Host:2222/Var/Repo')).toBe('ssh://User@Host:2222/Var/Repo');
    expect(conf('HTTPS://example.org/Repo.git', 'git')).toBe('https://example.org/Repo.git');
    expect(conf('FILE:///srv/Up', 'local')).toBe('/srv/Up');
    // Not a scheme: host:path and a path keep their case.
    expect(conf('Host:/Path')).toBe('Host:/Path');
  });

  it('resolves relative paths against the file that says them', async () => {
    const dir = tmpdir();
    const file = await writeConf(dir, `[x]\nlocation = repo\nsync-type = local\nsync-uri = file://up\nsync-rcu = yes\nsync-rcu-store-dir = store\n`);
    const r = loadConfig({ path: file }).repos[0];
    expect(r?.location).toBe(path.join(dir, 'repo'));
    expect(r?.syncUri).toBe(path.join(dir, 'up'));
    expect(r?.storeDir).toBe(path.join(dir, 'store'));
  });
});

describe('repos.conf errors name file, line and key', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['missing location', `[gentoo]\nsync-type = rsync\nsync-uri = rsync://x/y\n`, /repos\.conf:1: \[gentoo\] location: missing/],
    ['sync-rcu without store', base('sync-rcu = yes'), /repos\.conf:5: \[gentoo\] sync-rcu-store-dir: missing/],
    ['non-integer spare', base('sync-rcu-spare-snapshots = 1.5'), /:5: \[gentoo\] sync-rcu-spare-snapshots: expected a whole number/],
    ['negative ttl', base('sync-rcu-ttl-days = -1'), /:5: \[gentoo\] sync-rcu-ttl-days: expected a whole number/],
    ['word ttl', base('sync-rcu-ttl-days = seven'), /sync-rcu-ttl-days: expected a whole number >= 0, got "seven"/],
    ['store equal to location', base('sync-rcu = yes\nsync-rcu-store-dir = /var/db/repos/gentoo'), /:6: \[gentoo\] sync-rcu-store-dir: must not be the location itself/],
    ['store inside location', base('sync-rcu = yes\nsync-rcu-store-dir = /var/db/repos/gentoo/.store'), /sync-rcu-store-dir: must not be inside the location/],
    ['store containing location', base('sync-rcu = yes\nsync-rcu-store-dir = /var/db'), /sync-rcu-store-dir: must not contain the location/],
    [
      'two repos sharing a store',
      `${base('sync-rcu = yes\nsync-rcu-store-dir = /var/cache/rcu')}\n[other]\nlocation = /var/db/repos/other\nsync-rcu = yes\nsync-rcu-store-dir = /var/cache/rcu\n`,
      /:10: \[other\] sync-rcu-store-dir: store directory already used by repository "gentoo"/,
    ],
    ['store dir in DEFAULT', `[DEFAULT]\nsync-rcu-store-dir = /var/cache/rcu\n${base()}`, /:2: \[DEFAULT\] sync-rcu-store-dir: must not be set in \[DEFAULT\]/],
    ['duplicate section', `${base()}\n[gentoo]\nlocation = /x\n`, /:6: \[gentoo\]: duplicate section/],
    ['duplicate key', base('location = /elsewhere'), /:5: \[gentoo\] location: duplicate key/],
    ['key outside any section', `location = /x\n${base()}`, /repos\.conf:1 location: key outside any section/],
    ['bad boolean', base('sync-rcu = maybe'), /:5: \[gentoo\] sync-rcu: expected yes, no, true or false, got "maybe"/],
    ['line without =', base('just words'), /:5: \[gentoo\]: expected "key = value"/],
    ['unknown backend', base('sync-rcu-backend = zfs'), /sync-rcu-backend: unknown backend "zfs"/],
    ['sync-type without uri', `[gentoo]\nlocation = /x\nsync-type = rsync\n`, /\[gentoo\] sync-uri: missing/],
    ['inplace rsync option', base('sync-rsync-extra-opts = --inplace'), /sync-rsync-extra-opts: rsync option --inplace writes into existing files/],
    ['bad repo name', `[-bad]\nlocation = /x\n`, /:1: \[-bad\]: invalid repository name/],
  ];
  for (const [what, text, re] of cases) {
    it(what, () => {
      expect(configError(text).message).toMatch(re);
    });
  }
});

describe('repos.conf files and lookup', () => {
  it('merges a directory of files in lexical order, later files overriding, as Portage reads it', async () => {
    const dir = tmpdir();
    const d = path.join(dir, 'repos.conf');
    await fs.mkdir(d);
    await writeConf(d, `[gentoo]\nlocation = /a\nsync-type = rsync\nsync-uri = rsync://x/y\n`, '10-gentoo.conf');
    await writeConf(d, `[gentoo]\nlocation = /b\n`, '20-override.conf');
    await writeConf(d, `[gentoo]\nlocation = /hidden\n`, '.hidden.conf');
    await writeConf(d, `[gentoo]\nlocation = /backup\n`, '30-old.conf~');
    const cfg = loadConfig({ path: d, env: { REPOSNAP_PORTAGE_DEFAULTS: '' } });
    expect(cfg.repos[0]?.location).toBe('/b');
    expect(cfg.files.map((f) => path.basename(f))).toEqual(['10-gentoo.conf', '20-override.conf']);
  });

  it('looks up --config, then $REPOSNAP_CONFIG, then the system paths', async () => {
    const dir = tmpdir();
    const a = await writeConf(dir, '', 'a.conf');
    const b = await writeConf(dir, '', 'b.conf');
    const c = await writeConf(dir, '', 'c.conf');
    expect(findConfigPath({ path: a, env: { REPOSNAP_CONFIG: b }, systemPaths: [c] })).toBe(a);
    expect(findConfigPath({ env: { REPOSNAP_CONFIG: b }, systemPaths: [c] })).toBe(b);
    expect(findConfigPath({ env: {}, systemPaths: [path.join(dir, 'nope'), c] })).toBe(c);
    expect(() => findConfigPath({ env: {}, systemPaths: [path.join(dir, 'nope')] })).toThrow(/no repos.conf found/);
  });

  it('reports a missing or unreadable file as a configuration error', async () => {
    const dir = tmpdir();
    expect(() => loadConfig({ path: path.join(dir, 'missing.conf') })).toThrow(/missing\.conf: no such file/);
    if (isRoot) return; // root reads any file; the CLI test below covers it as nobody
    const f = await writeConf(dir, base());
    await fs.chmod(f, 0);
    expect(() => loadConfig({ path: f })).toThrow(/cannot read: EACCES/);
  });
});

describe('reposnap CLI on bad configuration', () => {
  it('exits 2 with one line naming file, line and key, and touches nothing', async () => {
    const dir = tmpdir();
    const conf = await writeConf(
      dir,
      `[test]\nlocation = ${dir}/repo\nsync-type = local\nsync-uri = ${dir}/up\nsync-rcu = yes\nsync-rcu-store-dir = ${dir}/repo/store\n`,
    );
    await fs.mkdir(path.join(dir, 'up'));
    const before = await readTree(dir);
    const r = await runCli(['--config', conf, 'sync']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${conf}:6: [test] sync-rcu-store-dir: must not be inside the location`);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(await readTree(dir)).toEqual(before);
  });

  it('exits 2 for an unreadable file', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, base());
    await fs.chmod(conf, 0o600);
    await fs.chmod(dir, 0o755);
    const r = isRoot ? await runCli(['--config', conf, 'status'], { asUser: { uid: 65534, gid: 65534 } }) : (await fs.chmod(conf, 0), await runCli(['--config', conf, 'status']));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${conf}: cannot read: EACCES`);
  });

  it('exits 2 for unknown commands and options, and for unknown repos', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, base());
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli(['sync', '--bogus'])).code).toBe(2);
    const r = await runCli(['--config', conf, 'path', 'nosuch']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no repository named "nosuch"/);
  });
});
