/**
 * 8. Hostile races, with a real unprivileged user (nobody) racing real syncs
 * run by root:
 *
 * - the local source on a folder nobody controls, while nobody rewrites its
 *   files and swaps them (and a folder) for symlinks to root-only files:
 *   no published file may hold root's secret;
 * - sync-user = nobody, while nobody opens every file it made in staging and
 *   keeps the descriptors, then writes through them after the commits, and
 *   tries to create, rewrite, remove and chmod entries of every snapshot:
 *   nothing published may change.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { cli, isRoot, must, repoSection, run, stopChildren, writeConf, writeTree, workDir, type CaseOptions, type CaseReport, type Row } from './lib.js';

const NOBODY = { uid: 65534, gid: 65534 };

/** Run `args` as nobody, in a process group of its own (see stopChildren). */
function asNobody(args: string[], stdout: 'ignore' | 'pipe' = 'ignore'): ChildProcess {
  return spawn('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', ...args], { stdio: ['ignore', stdout, 'ignore'], detached: true });
}

/** The tree the symlink racer works on: eight files and a folder. */
export const RACED_TREE: Record<string, string> = { 'd/key-1': 'user\n', 'd/key-2': 'user\n', ...Object.fromEntries([1, 2, 3, 4, 5, 6, 7, 8].map((n) => [`f${n}`, 'user file\n'])) };

/**
 * A shell loop, run as the tree's owner, that rewrites each file (so a sync
 * copies it) and then swaps it for a symlink to root's `secret`/key-1, and
 * does the same to the folder d: the race the local source must win.
 */
export function symlinkRacer(up: string, secret: string): string {
  return `cd '${up}' && i=0 && while :; do
      i=$((i+1))
      for n in 1 2 3 4 5 6 7 8; do echo "user data $i" > f$n.new; mv -f f$n.new f$n; done
      for n in 1 2 3 4 5 6 7 8; do ln -sfn '${secret}/key-1' l.tmp; mv -fT l.tmp f$n; done
      rm -rf d.new; mkdir d.new; echo "user $i" > d.new/key-1; echo "user $i" > d.new/key-2
      rm -rf d.old; mv -T d d.old 2>/dev/null; mv -T d.new d
      mv -T d d.new; ln -sfn '${secret}' d; rm -f d; mv -T d.new d
    done`;
}

/** Regular files below `root` whose content contains `needle`. */
export async function containing(root: string, needle: string): Promise<string[]> {
  const hits: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && (await fs.readFile(p, 'utf8')).includes(needle)) hits.push(path.relative(root, p));
    }
  };
  await walk(root);
  return hits;
}

async function localRace(opts: CaseOptions, syncs: number): Promise<Row> {
  const dir = await workDir(opts.work, 'race-local');
  await fs.chmod(dir, 0o755);
  await fs.chmod(path.dirname(dir), 0o755);
  const secret = path.join(dir, 'secret');
  await writeTree(secret, { 'key-1': 'SECRET root only\n', 'key-2': 'SECRET root only\n' });
  await fs.chmod(secret, 0o700);
  const up = path.join(dir, 'upstream');
  await writeTree(up, RACED_TREE);
  await must('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, up]);
  const conf = await writeConf(dir, repoSection('r', dir, '', up));
  await cli(['-q', '-c', conf, 'sync']);
  const racer = asNobody(['sh', '-c', symlinkRacer(up, secret)]);
  let ok = 0;
  let refused = 0;
  let other = 0;
  const leaked = new Set<string>();
  try {
    for (let i = 0; i < syncs; i++) {
      const r = await cli(['-q', '-c', conf, 'sync']);
      if (r.code === 0) ok++;
      else if (/changed while it was read|refusing/.test(r.stderr)) refused++;
      else other++;
      for (const f of await containing(await fs.realpath(path.join(dir, 'repo')), 'SECRET')) leaked.add(f);
    }
  } finally {
    await stopChildren([racer], 'SIGKILL');
  }
  // A command of the group may still be ending as the group goes: retried.
  await fs.rm(dir, { recursive: true, force: true, maxRetries: 5 });
  return {
    what: 'local source as root on a folder nobody controls, while nobody rewrites its files and swaps them and a folder for symlinks to root-only files; published files holding root\'s secret',
    tried: syncs,
    outcome: `${ok} syncs committed, ${refused} refused an entry that changed while read, ${other} failed otherwise (an entry vanished); files with root's secret in a published snapshot: ${leaked.size}`,
    bad: leaked.size,
  };
}

/**
 * Run as the sync user with (staging folder, stop file): open every file it
 * owns in staging for writing and keep the descriptor; once the stop file
 * exists, write through all of them and print how many it held.
 */
export const HOLDER = `
const fs = require('node:fs');
const [staging, done] = process.argv.slice(1);
const fds = []; const seen = new Set();
const scan = (d) => { let names = []; try { names = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
  for (const e of names) { const p = d + '/' + e.name; if (e.isDirectory()) { scan(p); continue; }
    if (!e.isFile() || seen.has(p)) continue;
    try { if (fs.statSync(p).uid !== process.getuid()) continue; fds.push(fs.openSync(p, 'r+')); seen.add(p); } catch {} } };
const tick = () => { if (fs.existsSync(done)) { for (const fd of fds) { try { fs.writeSync(fd, 'TAMPERED', 0); } catch {} }
  process.stdout.write(String(fds.length)); return; } scan(staging); setTimeout(tick, 2); };
tick();`;

async function syncUserRace(opts: CaseOptions, syncs: number): Promise<Row> {
  const dir = await workDir(opts.work, 'race-syncuser');
  await fs.chmod(dir, 0o755);
  await fs.chmod(path.dirname(dir), 0o755);
  const up = path.join(dir, 'upstream');
  const spec: Record<string, string> = {};
  for (let i = 0; i < 300; i++) spec[`cat-${i % 10}/pkg-${i}.ebuild`] = `EAPI=8 ${i}\n`;
  await writeTree(up, spec);
  const conf = await writeConf(dir, `${repoSection('s', dir, 'sync-user = nobody:nogroup\nsync-rcu-spare-snapshots = 1000', up)}`.replace('sync-type = local', 'sync-type = rsync'));
  const done = path.join(dir, 'done');
  const holder = asNobody([process.execPath, '-e', HOLDER, path.join(dir, 'store', 'reposnap', 'staging'), done], 'pipe');
  let held = '';
  holder.stdout?.on('data', (d: Buffer) => (held += d.toString()));
  let failed = 0;
  for (let i = 0; i < syncs; i++) {
    await writeTree(up, { [`cat-${i % 10}/pkg-${i}.ebuild`]: `EAPI=8 ${i} round ${i}\n`, [`new/n-${i}`]: `${i}\n` });
    if ((await cli(['-q', '-c', conf, 'sync'])).code !== 0) failed++;
  }
  await fs.writeFile(done, '');
  await new Promise((resolve) => holder.on('exit', resolve));
  const snapshots = await fs.readdir(path.join(dir, 'store', 'snapshots'));
  let tampered = 0;
  let writesAllowed = 0;
  let attempts = 0;
  for (const id of snapshots) {
    const snap = path.join(dir, 'store', 'snapshots', id);
    tampered += (await containing(snap, 'TAMPERED')).length;
    for (const attempt of [`touch '${snap}/planted'`, `touch '${snap}/cat-1/planted'`, `echo x >> '${snap}/cat-1/pkg-1.ebuild'`, `rm -f '${snap}/cat-2/pkg-2.ebuild'`, `chmod 777 '${snap}/cat-4'`]) {
      attempts++;
      const r = await run('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', 'sh', '-c', attempt]);
      if (r.code === 0) writesAllowed++;
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
  return {
    what: 'sync-user = nobody while nobody keeps descriptors open on every file it made in staging, writes through them after the commits, and tries to create, rewrite, remove and chmod entries of every snapshot',
    tried: syncs,
    outcome: `${syncs - failed} syncs committed (${failed} failed), ${Number(held) || 0} descriptors held; published files changed through them: ${tampered}; of ${attempts} write attempts into ${snapshots.length} snapshots, allowed: ${writesAllowed}`,
    bad: tampered + writesAllowed + failed,
  };
}

export async function hostileRaces(opts: CaseOptions): Promise<CaseReport> {
  if (!isRoot) return { title: 'Hostile races', rows: [], skipped: ['needs root: a real unprivileged user races root\'s syncs'] };
  const n = opts.long ? 100 : 5;
  opts.log(`hostile races: ${n} local syncs against a symlink-swapping user`);
  const rows = [await localRace(opts, n)];
  opts.log(`hostile races: ${n} syncs as sync-user against a descriptor-holding user`);
  rows.push(await syncUserRace(opts, n));
  return { title: 'Hostile races', rows, skipped: [] };
}
