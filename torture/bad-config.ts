/**
 * 5. Bad configuration. Malformed repos.conf files given to `reposnap sync`:
 * each must exit 2 with one line naming the file, the line and the key (or
 * section), and leave every file it could touch as it was.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { cli, listing, oneLine, writeConf, workDir, type CaseOptions, type CaseReport } from './lib.js';

/** [what, repos.conf text (ROOT stands for the case's directory), line, what the message must name]. */
type Case = [string, string, number, string];

function base(extra = '', section = 'gentoo'): string {
  return `[${section}]\nlocation = ROOT/repo\nsync-type = local\nsync-uri = ROOT/up\n${extra}`;
}
const rcu = (extra = ''): string => base(`sync-rcu = yes\nsync-rcu-store-dir = ROOT/store\n${extra}`);

const CASES: Case[] = [
  ['missing location', '[gentoo]\nsync-type = local\nsync-uri = ROOT/up\n', 1, 'location'],
  ['empty location', '[gentoo]\nlocation =\nsync-type = local\nsync-uri = ROOT/up\n', 2, 'location'],
  ['sync-rcu without a store', base('sync-rcu = yes\n'), 5, 'sync-rcu-store-dir'],
  ['spare snapshots not a number', rcu('sync-rcu-spare-snapshots = many\n'), 7, 'sync-rcu-spare-snapshots'],
  ['spare snapshots fractional', rcu('sync-rcu-spare-snapshots = 1.5\n'), 7, 'sync-rcu-spare-snapshots'],
  ['spare snapshots negative', rcu('sync-rcu-spare-snapshots = -1\n'), 7, 'sync-rcu-spare-snapshots'],
  ['ttl negative', rcu('sync-rcu-ttl-days = -3\n'), 7, 'sync-rcu-ttl-days'],
  ['ttl a word', rcu('sync-rcu-ttl-days = seven\n'), 7, 'sync-rcu-ttl-days'],
  ['store is the location', base('sync-rcu = yes\nsync-rcu-store-dir = ROOT/repo\n'), 6, 'sync-rcu-store-dir'],
  ['store inside the location', base('sync-rcu = yes\nsync-rcu-store-dir = ROOT/repo/.store\n'), 6, 'sync-rcu-store-dir'],
  ['store contains the location', base('sync-rcu = yes\nsync-rcu-store-dir = ROOT\n'), 6, 'sync-rcu-store-dir'],
  ['two repos share a store', `${rcu()}\n[other]\nlocation = ROOT/other\nsync-type = local\nsync-uri = ROOT/up\nsync-rcu = yes\nsync-rcu-store-dir = ROOT/store\n`, 13, 'sync-rcu-store-dir'],
  ['store dir in DEFAULT', `[DEFAULT]\nsync-rcu-store-dir = ROOT/store\n${base()}`, 2, 'sync-rcu-store-dir'],
  ['a lone % (Portage refuses the file over it)', base().replace('sync-uri = ROOT/up', 'sync-uri = ROOT/up%20x'), 4, 'sync-uri'],
  ['duplicate section', `${base()}\n[gentoo]\nlocation = ROOT/x\n`, 6, '[gentoo]'],
  ['duplicate key', base('location = ROOT/elsewhere\n'), 5, 'location'],
  ['key outside any section', `location = ROOT/x\n${base()}`, 1, 'location'],
  ['boolean that is not one', rcu('sync-rcu-prepare-staging = perhaps\n'), 7, 'sync-rcu-prepare-staging'],
  ['sync-rcu not a boolean', base('sync-rcu = maybe\n'), 5, 'sync-rcu'],
  ['auto-sync not a boolean', base('auto-sync = sometimes\n'), 5, 'auto-sync'],
  ['line without "="', base('just some words\n'), 5, '[gentoo]'],
  ['unknown backend', rcu('sync-rcu-backend = zfs\n'), 7, 'sync-rcu-backend'],
  ['hardlink backend with hardlinks forbidden', rcu('sync-allow-hardlinks = no\nsync-rcu-backend = hardlink\n'), 8, 'sync-rcu-backend'],
  ['sync-type without a uri', '[gentoo]\nlocation = ROOT/repo\nsync-type = rsync\n', 1, 'sync-uri'],
  ['rsync option that writes in place', base('sync-rsync-extra-opts = --inplace\n').replace('sync-type = local', 'sync-type = rsync'), 5, 'sync-rsync-extra-opts'],
  ['invalid repository name', '[-bad]\nlocation = ROOT/repo\n', 1, '[-bad]'],
  ['local source given a URL', base().replace('sync-uri = ROOT/up', 'sync-uri = http://example.org/x'), 4, 'sync-uri'],
  ['tarball source given a path', base().replace('sync-type = local', 'sync-type = tarball'), 4, 'sync-uri'],
  ['umask not octal', base('sync-umask = 9x9\n'), 5, 'sync-umask'],
  ['sync-user that does not exist', base('sync-user = no-such-user-reposnap\n'), 5, 'sync-user'],
  ['sync-depth negative', base('sync-depth = -2\n').replace('sync-type = local', 'sync-type = git'), 5, 'sync-depth'],
  ['tarball sha256 of the wrong length', base('sync-tarball-sha256 = abc123\n').replace('sync-type = local', 'sync-type = tarball').replace('sync-uri = ROOT/up', 'sync-uri = http://127.0.0.1:1/t.tar.gz'), 5, 'sync-tarball-sha256'],
  ['hooks-only-on-change not a boolean', base('sync-hooks-only-on-change = often\n'), 5, 'sync-hooks-only-on-change'],
  ['section header never closed', `${base()}[broken\nlocation = ROOT/b\n`, 5, '[broken'],
  ['empty section name', `[]\nlocation = ROOT/x\n${base()}`, 1, '[]'],
  ['sync-uri continued over two lines', base().replace('sync-uri = ROOT/up', 'sync-uri = ROOT/up\n  ROOT/down'), 4, 'sync-uri'],
];

export async function badConfig(opts: CaseOptions): Promise<CaseReport> {
  const dir = await workDir(opts.work, 'bad-config');
  let ok = 0;
  const failures: string[] = [];
  const touched: string[] = [];
  for (const [i, [what, text, line, names]] of CASES.entries()) {
    const root = path.join(dir, `c${i}`);
    // A location with content and an upstream: nothing may change either.
    const conf = await writeConf(dir, text.replaceAll('ROOT', root), `c${i}.conf`);
    await fs.mkdir(path.join(root, 'repo'), { recursive: true });
    await fs.writeFile(path.join(root, 'repo', 'file'), 'before\n');
    await fs.mkdir(path.join(root, 'up'), { recursive: true });
    await fs.writeFile(path.join(root, 'up', 'file'), 'after\n');
    const before = await listing(dir);
    const r = await cli(['-c', conf, 'sync', '--no-wait']);
    const after = await listing(dir);
    if (before !== after) touched.push(what);
    const msg = r.stderr.trim();
    const good = r.code === 2 && oneLine(r.stderr) && msg.includes(`${conf}:${line}`) && msg.includes(names);
    if (good) ok++;
    else failures.push(`${what}: exit ${r.code}, "${msg.split('\n')[0]?.slice(0, 160)}"`);
  }
  return {
    title: 'Bad configuration',
    rows: [
      {
        what: `${CASES.length} malformed repos.conf files (${CASES.map((c) => c[0]).join('; ')})`,
        tried: CASES.length,
        outcome: `${ok} exited 2 with one line naming file:line and the key or section; ${failures.length} did not${failures.length ? ` (${failures.join('; ')})` : ''}; ${touched.length} touched a file${touched.length ? ` (${touched.join('; ')})` : ''}`,
        bad: failures.length + touched.length,
      },
    ],
    skipped: [],
  };
}
