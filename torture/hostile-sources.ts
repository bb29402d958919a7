/**
 * 6. Hostile sources. Trees and archives built to escape the store or to
 * trip the copy: symlinks out of the tree or absolute, path traversal in
 * archives, devices and FIFOs, names with newlines or invalid UTF-8,
 * unreadable files, very deep trees, 100k empty files. Each must be refused
 * with a clean error (previous snapshot current) or kept exactly, and nothing
 * may be written outside the store.
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { cli, exists, isRoot, listing, must, oneLine, repoSection, run, tarEntry, tarOf, writeConf, workDir, type CaseOptions, type CaseReport, type Row } from './lib.js';

/** A digest of a tree (names, types, modes, file sizes, link targets; not directory sizes) that copes with paths longer than PATH_MAX. */
async function findDigest(root: string): Promise<string> {
  const r = await run('bash', ['-c', `cd "$1" && find . \\( -type f -printf '%P f %m %s\\n' \\) -o -printf '%P %y %m %l\\n' | LC_ALL=C sort | sha256sum`, '_', root]);
  if (r.code !== 0) throw new Error(`find in ${root}: ${r.stderr}`);
  return r.stdout.trim();
}

async function contentDigest(root: string): Promise<string> {
  const r = await run('bash', ['-c', `cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum | sha256sum`, '_', root]);
  return r.stdout.trim();
}

interface Outcome {
  kept: boolean;
  refused: boolean;
  detail: string;
}

/**
 * Sync `build`'s tree with the given source type; return whether the
 * snapshot kept it exactly or the sync refused it cleanly (and left the
 * previous snapshot), and check that `outside` did not change.
 */
async function syncTree(opts: CaseOptions, type: 'local' | 'rsync' | 'git', tag: string, build: (up: string) => Promise<void>, extra = ''): Promise<Outcome & { escaped: boolean }> {
  const dir = await workDir(opts.work, `hostile-${type}-${tag}`);
  const outside = path.join(dir, 'outside');
  await fs.mkdir(outside);
  await fs.writeFile(path.join(outside, 'sentinel'), 'untouched\n');
  // sync-user = nobody must be able to reach the source (but not the secret).
  await fs.chmod(dir, 0o755);
  await fs.chmod(opts.work, 0o755);
  const up = path.join(dir, 'up');
  await fs.mkdir(up, { mode: 0o755 });
  await fs.writeFile(path.join(up, 'first'), 'first\n');
  let uri = up;
  const git = async (...a: string[]) => must('git', ['-C', up, '-c', 'user.name=t', '-c', 'user.email=t@t', ...a]);
  if (type === 'git') {
    await git('init', '-q');
    await git('add', '-A');
    await git('commit', '-qm', 'first');
    uri = `file://${up}`;
  }
  const conf = await writeConf(dir, repoSection('h', path.join(dir, 's'), extra, uri).replace('sync-type = local', `sync-type = ${type}`));
  const first = await cli(['-q', '-c', conf, 'sync']);
  if (first.code !== 0) throw new Error(`hostile ${tag}: first sync failed: ${first.stderr}`);
  const before = await listing(outside);
  await build(up);
  if (type === 'git') {
    await git('add', '-A');
    await git('commit', '-qm', 'hostile');
  }
  const r = await cli(['-q', '-c', conf, 'sync']);
  const latest = await fs.readlink(path.join(dir, 's', 'store', 'latest'));
  const escaped = (await listing(outside)) !== before;
  await fs.rm(path.join(up, '.git'), { recursive: true, force: true });
  if (r.code === 0) {
    const snap = path.join(dir, 's', 'store', latest);
    const kept = (await findDigest(snap)) === (await findDigest(up)) && (await contentDigest(snap)) === (await contentDigest(up));
    await cleanup(dir);
    return { kept, refused: false, escaped, detail: kept ? 'kept exactly' : 'committed but differs from the source' };
  }
  const refused = r.code === 1 && oneLine(r.stderr) && latest === 'snapshots/1';
  await cleanup(dir);
  return { kept: false, refused, escaped, detail: `refused: ${r.stderr.trim().split('\n')[0]?.replace(dir, '…').slice(0, 120)}` };
}

async function cleanup(dir: string): Promise<void> {
  // rm -rf: fs.rm cannot remove a tree deeper than PATH_MAX.
  await run('rm', ['-rf', dir]);
}

export async function hostileSources(opts: CaseOptions): Promise<CaseReport> {
  const rows: Row[] = [];
  const skipped: string[] = [];
  const trees: Array<[string, (up: string) => Promise<void>, Array<'local' | 'rsync' | 'git'>, string?]> = [
    ['symlinks absolute and pointing outside the tree', async (up) => {
      await fs.symlink('/etc/passwd', path.join(up, 'abs'));
      await fs.symlink('../../../../..', path.join(up, 'up-and-out'));
      await fs.mkdir(path.join(up, 'd'));
      await fs.symlink('../../outside/sentinel', path.join(up, 'd', 'to-sentinel'));
    }, ['local', 'rsync', 'git']],
    ['names with a newline, invalid UTF-8, and a leading dash', async (up) => {
      await fs.writeFile(path.join(up, 'new\nline'), 'n\n');
      await fs.writeFile(Buffer.concat([Buffer.from(`${up}/bad-`), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from('-utf8')]), 'u\n');
      await fs.writeFile(path.join(up, '-rf'), 'dash\n');
    }, ['local', 'rsync', 'git']],
    ['a directory 500 levels deep (path longer than PATH_MAX)', async (up) => {
      await must('bash', ['-c', 'cd "$1" && for i in $(seq 500); do mkdir dddddddddd && cd dddddddddd; done && echo deep > f', '_', up]);
    }, ['local', 'rsync']],
    [`${opts.long ? '100k' : '20k'} empty files`, async (up) => {
      for (let d = 0; d < (opts.long ? 100 : 20); d++) {
        await fs.mkdir(path.join(up, `e${d}`));
        await Promise.all(Array.from({ length: 1000 }, (_, i) => fs.writeFile(path.join(up, `e${d}`, `f${i}`), '')));
      }
    }, ['local', 'rsync']],
  ];
  if (isRoot) {
    trees.push(['a character device and a FIFO', async (up) => {
      await must('mknod', [path.join(up, 'null-dev'), 'c', '1', '3']);
      await must('mkfifo', [path.join(up, 'fifo')]);
    }, ['local', 'rsync']]);
    trees.push(['an unreadable file (sync-user = nobody)', async (up) => {
      await fs.writeFile(path.join(up, 'secret'), 'secret\n', { mode: 0o600 });
      await run('chmod', ['-R', 'a+rX', path.join(up, 'first')]);
    }, ['local', 'rsync'], 'sync-user = nobody']);
  } else skipped.push('devices and unreadable files need root (mknod, sync-user)');

  for (const [what, build, types, extra] of trees) {
    for (const type of types) {
      opts.log(`hostile sources: ${what} (${type})`);
      const o = await syncTree(opts, type, what.split(' ')[0] as string, build, extra).catch((err: unknown) => ({
        kept: false,
        refused: false,
        escaped: false,
        detail: `the case failed: ${String(err).split('\n')[0]}`,
      }));
      rows.push({
        what: `${type} source: ${what}`,
        tried: 1,
        outcome: `${o.detail}${o.escaped ? '; WROTE OUTSIDE THE STORE' : ''}`,
        bad: (o.kept || o.refused ? 0 : 1) + (o.escaped ? 1 : 0),
      });
    }
  }
  rows.push(await hostileArchives(opts));
  return { title: 'Hostile sources', rows, skipped };
}

/** Hand-made tar archives that try to leave the tree, served over HTTP on 127.0.0.1. */
async function hostileArchives(opts: CaseOptions): Promise<Row> {
  opts.log('hostile sources: tar archives');
  const dir = await workDir(opts.work, 'hostile-tar');
  const escape = path.join(dir, 'escape');
  const ok = tarEntry('metadata/timestamp.chk', { data: 'hostile\n' });
  const archives: Array<[string, Buffer]> = [
    ['absolute path', tarOf(ok, tarEntry(`${escape}/abs`, { data: 'x' }))],
    ['.. in a path', tarOf(ok, tarEntry('a/../../../../escape-dots', { data: 'x' }))],
    ['symlink to an absolute path', tarOf(ok, tarEntry('etc', { type: '2', link: '/etc' }))],
    ['symlink pointing outside', tarOf(ok, tarEntry('a/up', { type: '2', link: '../../..' }))],
    ['member written through a symlink', tarOf(ok, tarEntry('d', { type: '2', link: escape }), tarEntry('d/file', { data: 'x' }))],
    ['hardlink to a file outside', tarOf(ok, tarEntry('h', { type: '1', link: '/etc/passwd' }))],
    ['character device', tarOf(ok, tarEntry('dev', { type: '3' }))],
    ['FIFO', tarOf(ok, tarEntry('fifo', { type: '6' }))],
    ['truncated archive', tarOf(ok, tarEntry('big', { data: 'y'.repeat(4000) })).subarray(0, 1500)],
    // Last: it may be kept (a legal if odd name), which moves latest on.
    ['name with a newline', tarOf(ok, tarEntry('new\nline', { data: 'x' }))],
  ];
  let current: Buffer = Buffer.alloc(0);
  const server = http.createServer((_req, res) => res.writeHead(200, { 'content-length': current.length }).end(current));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/t.tar`;
  const conf = await writeConf(dir, repoSection('t', dir, '', url).replace('sync-type = local', 'sync-type = tarball'));
  let refused = 0;
  let kept = 0;
  const wrong: string[] = [];
  try {
    current = tarOf(tarEntry('metadata/timestamp.chk', { data: 'good\n' }));
    const first = await cli(['-q', '-c', conf, 'sync']);
    if (first.code !== 0) throw new Error(`tarball first sync failed: ${first.stderr}`);
    for (const [what, body] of archives) {
      current = body;
      const r = await cli(['-q', '-c', conf, 'sync']);
      const latest = await fs.readlink(path.join(dir, 'store', 'latest'));
      const escaped = (await exists(escape)) || (await exists(path.join(dir, 'escape-dots'))) || (await exists(path.join(path.dirname(dir), 'escape-dots')));
      if (r.code === 1 && oneLine(r.stderr) && latest === 'snapshots/1' && !escaped) refused++;
      else if (r.code === 0 && !escaped && what === 'name with a newline') kept++;
      else wrong.push(`${what}: exit ${r.code}, latest ${latest}${escaped ? ', wrote outside' : ''}`);
    }
  } finally {
    server.close();
  }
  await fs.rm(dir, { recursive: true, force: true });
  return {
    what: `tarball source: ${archives.length} hostile archives (${archives.map((a) => a[0]).join('; ')})`,
    tried: archives.length,
    outcome: `${refused} refused with one line and snapshot 1 still current, ${kept} kept exactly; ${wrong.length} otherwise${wrong.length ? ` (${wrong.join('; ')})` : ''}`,
    bad: wrong.length,
  };
}
