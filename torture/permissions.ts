/**
 * 7. Permissions. A store synced by root from an upstream that has
 * world-writable files and directories: no snapshot entry may be writable by
 * other users, no staging, lock or metadata file world-writable, and an
 * unprivileged user must be refused every write into a snapshot but be able
 * to use `path` and `exec` (which takes a lease) on the root-owned store.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { cli, isRoot, must, repoSection, run, writeConf, workDir, type CaseOptions, type CaseReport, type Row } from './lib.js';

const NOBODY = { uid: 65534, gid: 65534 };

async function walk(root: string, fn: (p: string, mode: number, isDir: boolean) => void): Promise<void> {
  const st = await fs.lstat(root);
  fn(root, st.mode, st.isDirectory());
  if (!st.isDirectory()) return;
  for (const n of await fs.readdir(root)) await walk(path.join(root, n), fn);
}

export async function permissions(opts: CaseOptions): Promise<CaseReport> {
  if (!isRoot) return { title: 'Permissions', rows: [], skipped: ['needs root: the store is owned by root and read as nobody'] };
  const dir = await workDir(opts.work, 'perm');
  await fs.chmod(dir, 0o755);
  await fs.chmod(path.dirname(dir), 0o755);
  const up = path.join(dir, 'upstream');
  await fs.mkdir(path.join(up, 'open-dir'), { recursive: true });
  await fs.writeFile(path.join(up, 'open-file'), 'x\n');
  await fs.writeFile(path.join(up, 'plain'), 'p\n');
  await fs.writeFile(path.join(up, 'open-dir', 'inside'), 'i\n');
  await fs.chmod(path.join(up, 'open-file'), 0o666);
  await fs.chmod(path.join(up, 'open-dir'), 0o777);
  const rows: Row[] = [];
  for (const [tag, extra] of [
    ['prepared staging, hardlinks', 'sync-rcu-prepare-staging = yes'],
    ['copy backend', 'sync-rcu-backend = copy'],
  ] as const) {
    const sub = path.join(dir, tag.replace(/\W+/g, '-'));
    await fs.mkdir(sub, { mode: 0o755 });
    const conf = await writeConf(sub, repoSection('p', sub, extra, up));
    await fs.chmod(conf, 0o644);
    opts.log(`permissions: ${tag}`);
    for (let i = 0; i < 2; i++) {
      await fs.writeFile(path.join(up, 'plain'), `p${i}\n`);
      const r = await cli(['-q', '-c', conf, 'sync']);
      if (r.code !== 0) throw new Error(`permissions sync failed: ${r.stderr}`);
    }
    const store = path.join(sub, 'store');
    const writable: string[] = [];
    let entries = 0;
    await walk(path.join(store, 'snapshots'), (p, mode) => {
      entries++;
      if ((mode & 0o170000) !== 0o120000 && mode & 0o022) writable.push(path.relative(store, p));
    });
    rows.push({
      what: `${tag}: snapshot entries writable by group or others (upstream has a 0666 file and a 0777 directory)`,
      tried: entries,
      outcome: `${writable.length} writable${writable.length ? ` (${writable.slice(0, 3).join(', ')})` : ''}`,
      bad: writable.length,
    });
    const open: string[] = [];
    let own = 0;
    await walk(path.join(store, 'reposnap'), (p, mode) => {
      own++;
      if ((mode & 0o170000) !== 0o120000 && mode & 0o002) open.push(path.relative(store, p));
    });
    await walk(store, (p, mode) => {
      if (p === store && mode & 0o002) open.push('store');
    });
    rows.push({ what: `${tag}: staging, lock, lease and metadata files world-writable`, tried: own, outcome: `${open.length} world-writable${open.length ? ` (${open.slice(0, 3).join(', ')})` : ''}`, bad: open.length });

    // nobody tries to write into the current snapshot through the location.
    const loc = path.join(sub, 'repo');
    const attempts = [
      `echo y > ${loc}/plain`,
      `echo y > ${loc}/open-file`,
      `echo y > ${loc}/open-dir/new`,
      `rm -f ${loc}/open-dir/inside`,
      `mkdir ${loc}/newdir`,
      `echo y > ${store}/latest/plain`,
      `ln -sfn /tmp ${store}/latest`,
      `echo y > ${store}/reposnap/last-id`,
    ];
    let succeeded = 0;
    const which: string[] = [];
    for (const a of attempts) {
      const r = await run('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', 'sh', '-c', a]);
      if (r.code === 0) {
        succeeded++;
        which.push(a.replace(sub, '…'));
      }
    }
    rows.push({ what: `${tag}: writes by nobody into the snapshot and the store`, tried: attempts.length, outcome: `${attempts.length - succeeded} refused, ${succeeded} succeeded${which.length ? ` (${which.join('; ')})` : ''}`, bad: succeeded });

    const asNobody = { asUser: NOBODY };
    const p = await cli(['-c', conf, 'path', 'p'], asNobody);
    const current = await fs.realpath(loc);
    const e = await cli(['-c', conf, 'exec', 'p', '--', 'sh', '-c', 'cat "$REPOSNAP_SNAPSHOT/plain"'], asNobody);
    const readOk = p.code === 0 && p.stdout.trim() === current && e.code === 0 && e.stdout === 'p1\n';
    rows.push({
      what: `${tag}: nobody runs \`path\` and \`exec\` (a lease) on the root-owned store`,
      tried: 2,
      outcome: readOk ? 'both worked and saw the current snapshot' : `path exit ${p.code} (${p.stderr.trim()}), exec exit ${e.code} (${e.stderr.trim()})`,
      bad: readOk ? 0 : 1,
    });
  }
  // sync-user: the store is written by nobody; root and nobody can read it.
  const sub = path.join(dir, 'sync-user');
  await fs.mkdir(sub, { mode: 0o755 });
  const conf = await writeConf(sub, repoSection('p', sub, 'sync-user = nobody', up));
  const r = await cli(['-q', '-c', conf, 'sync']);
  const e = await cli(['-c', conf, 'exec', 'p', '--', 'cat', path.join(sub, 'repo', 'plain')], { asUser: NOBODY });
  const st = await fs.stat(path.join(sub, 'store', 'latest', 'plain')).catch(() => undefined);
  const ok = r.code === 0 && e.code === 0 && st !== undefined && (st.mode & 0o022) === 0;
  rows.push({ what: 'sync-user = nobody: sync, then nobody reads through exec; files not group/world-writable', tried: 1, outcome: ok ? 'worked' : `sync exit ${r.code} (${r.stderr.trim()}), exec exit ${e.code}, mode ${st?.mode.toString(8)}`, bad: ok ? 0 : 1 });
  await must('rm', ['-rf', dir]);
  return { title: 'Permissions', rows, skipped: [] };
}
