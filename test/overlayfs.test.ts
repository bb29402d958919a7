/**
 * The overlayfs backend on real overlay mounts, on a loop-mounted ext4 image
 * (as root; skipped elsewhere with the reason printed): syncs that change,
 * delete and replace entries, a reader keeping an older snapshot through
 * many syncs while stacks are flattened, collection of shared layers,
 * kill -9 at random instants and at every commit step, every mount removed
 * (a reboot) and brought back, status, revert to a plain folder, sources
 * that link into the target (git), and refusal where it cannot work.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { StoreLayout } from '../src/store/layout.js';
import { interruptAt } from '../torture/lib.js';
import { mountImage, overlayUnavailable, type Mounted } from './fs-images.js';
import { readTree, runCli, sleep, startCli, wholeVersion, writeConf, writeTree, writeVersionedTree } from './helpers.js';

function conf(root: string, extra = '', type = 'local'): string {
  return `[test]
location = ${root}/repo
sync-type = ${type}
sync-uri = ${root}/upstream
sync-rcu = yes
sync-rcu-store-dir = ${root}/store
sync-rcu-backend = overlayfs
${extra}
`;
}

function overlayMounts(under: string): string[] {
  return execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => / - overlay /.test(l))
    .map((l) => l.split(' ')[4] as string)
    .filter((m) => m.startsWith(`${under}/`));
}

/**
 * What a reboot does to the store: every overlay in it is gone. A mount may
 * go by itself meanwhile (the umount of a backend probe that a killed sync
 * had started still running): only one still there must unmount.
 */
function unmountAll(under: string): void {
  for (const m of overlayMounts(under).reverse()) {
    try {
      execFileSync('umount', [m], { stdio: 'pipe' });
    } catch (err) {
      if (overlayMounts(under).includes(m)) throw err;
    }
  }
}

async function layerNames(layout: StoreLayout): Promise<string[]> {
  return (await fs.readdir(layout.layersDir)).filter((n) => !n.startsWith('.')).sort();
}

let mounted: Mounted | string = 'not mounted yet';
const skip = (ctx: { skip: () => void }): boolean => {
  if (typeof mounted !== 'string') return false;
  ctx.skip();
  return true;
};

beforeAll(() => {
  const why = overlayUnavailable();
  mounted = why ?? mountImage('ext4', 768);
  if (typeof mounted === 'string') console.log(`skipping overlayfs tests: ${mounted}`);
});
afterAll(() => {
  if (typeof mounted !== 'string') mounted.unmount();
});

async function fresh(tag: string): Promise<string> {
  return fs.mkdtemp(path.join((mounted as Mounted).dir, `${tag}-`));
}

describe('overlayfs snapshots', () => {
  for (const type of ['local', 'rsync'] as const) {
    it(`${type}: change, delete, replace a file by a folder and back; older snapshots never move`, async (ctx) => {
      if (skip(ctx)) return;
      const root = await fresh(`changes-${type}`);
      const up = path.join(root, 'upstream');
      await writeTree(up, { 'metadata/timestamp.chk': 'T1\n', 'cat/pkg/pkg-1.ebuild': 'EAPI=8\n', 'cat/pkg/Manifest': 'M\n', swap: 'a file\n', 'gone/x': 'x\n', link: { symlink: 'cat/pkg' } });
      const repo = Repos.fromText(conf(root, 'sync-rcu-spare-snapshots = 20\nsync-rcu-overlay-max-layers = 3', type), path.join(root, 'r.conf')).get('test');
      const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));
      const steps: Array<[string, () => Promise<void>]> = [
        ['first sync', async () => undefined],
        // (Another size: rsync's quick check misses a same-size rewrite within the second.)
        ['a change', () => fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2 changed\n')],
        ['a deletion', () => fs.rm(path.join(up, 'gone'), { recursive: true })],
        [
          'a file replaced by a folder',
          async () => {
            await fs.rm(path.join(up, 'swap'));
            await writeTree(up, { 'swap/inside': 'now a folder\n' });
          },
        ],
        [
          'and back',
          async () => {
            await fs.rm(path.join(up, 'swap'), { recursive: true });
            await fs.writeFile(path.join(up, 'swap'), 'a file again\n');
          },
        ],
        ['a folder deleted and made again', async () => {
          await fs.rm(path.join(up, 'cat'), { recursive: true });
          await writeTree(up, { 'cat/other/new.ebuild': 'EAPI=8\n' });
        }],
      ];
      const kept: Array<{ id: number; tree: unknown }> = [];
      for (const [what, change] of steps) {
        await change();
        const r = await repo.sync();
        expect(r.outcome, what).toBe('updated');
        const id = r.snapshot?.id as number;
        expect(await readTree(path.join(root, 'repo/')), `${what}: the location`).toEqual(await readTree(up));
        for (const old of kept) expect(await readTree(layout.snapshot(old.id)), `${what}: snapshot ${old.id}`).toEqual(old.tree);
        kept.push({ id, tree: await readTree(layout.snapshot(id)) });
        await expect(fs.writeFile(path.join(layout.snapshot(id), 'x'), 'x'), 'read-only').rejects.toThrow(/EROFS/);
      }
      const status = await repo.status();
      expect(status.backend).toBe('overlayfs');
      // Every stack ends on a whole tree and never has more than 3 layers.
      for (const s of status.snapshots) {
        expect(s.mounted).toBe(true);
        expect(s.layers?.[0]).toBe(String(s.id));
        expect(s.layers?.length).toBeLessThanOrEqual(3);
      }
      expect(status.snapshots.some((s) => s.layers?.some((l) => l.endsWith('-flat')))).toBe(true);
    });
  }

  it('a reader holding an older snapshot through many syncs; collection removes only layers nothing uses', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('reader');
    const up = path.join(root, 'upstream');
    await writeVersionedTree(up, 200, 'v0');
    const conf1 = await writeConf(root, conf(root, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0\nsync-rcu-overlay-max-layers = 3'));
    const repo = Repos.load({ path: conf1 }).get('test');
    const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));
    await repo.sync();
    // A reader in another process, reading its snapshot again and again.
    const reader = startCli(['-c', conf1, 'exec', 'test', '--', 'sh', '-c', 'while :; do cat "$REPOSNAP_SNAPSHOT"/VERSION >/dev/null || exit 3; sleep 0.05; done']);
    let held: number | undefined;
    for (let waited = 0; held === undefined && waited < 20_000; waited += 100) {
      held = (await repo.status()).snapshots.find((s) => s.leases.count > 0)?.id;
      if (held === undefined) await sleep(100);
    }
    expect(held).toBe(1);
    const heldTree = await readTree(layout.snapshot(1));
    const flattened: number[] = [];
    for (let i = 1; i <= 10; i++) {
      await writeVersionedTree(up, 200, `v${i}`);
      if (i % 3 === 0) await fs.rm(path.join(up, 'cat-1'), { recursive: true });
      const r = await repo.sync();
      if (r.flattened) {
        expect(r.flattened).toMatchObject({ snapshot: r.snapshot?.id, layers: 3 });
        flattened.push(r.flattened.snapshot);
      }
      expect(await wholeVersion(path.join(root, 'repo'), i % 3 === 0 ? 150 : 200)).toBe(`v${i}`);
    }
    expect(await readTree(layout.snapshot(1))).toEqual(heldTree);
    // Stacks of 1, 2, 3 layers, then flattened: snapshots 3, 5, 7, 9, 11 reach 3 (1 on its own, then 2 on each flat layer).
    expect(flattened).toEqual([3, 5, 7, 9, 11]);
    const st = await repo.status();
    expect(st.snapshots.map((s) => s.id)).toEqual([1, 11]); // the leased one and the current
    // Exactly the layers the kept stacks use (and the flattened current, if its stack is full).
    const used = new Set(['empty', ...st.snapshots.flatMap((s) => s.layers ?? [])]);
    const staged = JSON.parse(await fs.readFile(path.join(layout.stagingDir, `${st.staging[0]?.tx}.json`), 'utf8')) as { lower?: string[] };
    for (const l of staged.lower ?? []) used.add(l);
    const names = await layerNames(layout);
    expect(names.filter((n) => !used.has(n) && n !== '11-flat')).toEqual([]);
    expect([...used].filter((n) => !names.includes(n))).toEqual([]);
    reader.child.kill('SIGTERM');
    const end = await reader.done;
    expect(end.code === 3, `the reader failed a read: ${end.stderr}`).toBe(false);
    await repo.gc();
    expect((await repo.status()).snapshots.map((s) => s.id)).toEqual([11]);
    expect(overlayMounts(layout.snapshotsDir).map((m) => path.basename(m))).toEqual(['11']);
  });

  it('kill -9 at random instants: the location stays whole, mounted after the next command', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('kill');
    const up = path.join(root, 'upstream');
    const n = 600;
    await writeVersionedTree(up, n, 'k0');
    const c = await writeConf(root, conf(root, 'sync-rcu-spare-snapshots = 1\nsync-rcu-ttl-days = 0\nsync-rcu-overlay-max-layers = 3'));
    const t0 = Date.now();
    expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
    const duration = Math.max(Date.now() - t0, 100);
    const seen = new Set(['k0']);
    let killed = 0;
    for (let i = 1; i <= 10; i++) {
      await writeVersionedTree(up, n, `k${i}`);
      const run = startCli(['-c', c, 'sync']);
      await sleep(Math.random() * duration * 1.5);
      run.child.kill('SIGKILL');
      if ((await run.done).signal === 'SIGKILL') killed++;
      if (i % 3 === 0) unmountAll(root); // and a reboot now and then
      const p = await runCli(['-c', c, 'path', 'test']);
      expect(p.stderr).toBe('');
      const v = await wholeVersion(p.stdout.trim(), n);
      expect([...seen, `k${i}`]).toContain(v);
      seen.add(v);
    }
    expect(killed).toBeGreaterThan(0);
    const final = await runCli(['-c', c, 'sync']);
    expect(final.stderr).toBe('');
    expect(await wholeVersion(path.join(root, 'repo'), n)).toBe('k10');
    await runCli(['-c', c, 'gc']);
    const status = (JSON.parse((await runCli(['-c', c, 'status', '--json'])).stdout) as { results: { repos: Array<{ snapshots: Array<{ mounted: boolean }>; staging: unknown[] }> } }).results;
    expect(status.repos[0]?.snapshots.every((s) => s.mounted)).toBe(true);
    expect(status.repos[0]?.staging.length).toBeLessThanOrEqual(1);
  });

  it('a kill at each step of a commit: the next sync publishes upstream, nothing is left behind', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('steps');
    const up = path.join(root, 'upstream');
    await writeTree(up, { 'a/b': 'b0\n', c: 'c0\n' });
    const c = await writeConf(root, conf(root, 'sync-rcu-spare-snapshots = 0\nsync-rcu-ttl-days = 0'));
    expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
    const layout = new StoreLayout(path.join(root, 'store'), path.join(root, 'repo'));
    let n = 0;
    for (const point of ['staged', 'fill-midway', 'filled', 'sealed', 'renamed']) {
      n++;
      await writeTree(up, { 'a/b': `b${n}\n`, [`new-${n}`]: 'x\n' });
      await fs.rm(path.join(up, n === 1 ? 'c' : `new-${n - 1}`), { force: true });
      const cut = await interruptAt(['-c', c, 'sync'], point, 'SIGKILL');
      expect(cut.reached, `${point}: ${cut.stderr}`).toBe(true);
      const r = await runCli(['-c', c, 'sync']);
      expect(r.stderr, point).toBe('');
      expect(await readTree(path.join(root, 'repo/')), point).toEqual(await readTree(up));
    }
    await runCli(['-c', c, 'gc']);
    const status = await Repos.load({ path: c }).get('test').status();
    const used = new Set(['empty', ...status.snapshots.flatMap((s) => s.layers ?? [])]);
    for (const s of status.staging) {
      const info = JSON.parse(await fs.readFile(path.join(layout.stagingDir, `${s.tx}.json`), 'utf8')) as { lower?: string[] };
      for (const l of info.lower ?? []) used.add(l);
    }
    expect((await layerNames(layout)).filter((l) => !used.has(l))).toEqual([]);
    expect(await fs.readdir(layout.snapshotsDir)).toEqual([String(status.current?.id)]);
  });

  it('every mount removed (a reboot) and brought back: by reposnap mount, by any command that reads, by a sync', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('reboot');
    const up = path.join(root, 'upstream');
    await writeTree(up, { 'a/b': 'one\n', c: 'c\n' });
    const c = await writeConf(root, conf(root, 'sync-rcu-spare-snapshots = 3'));
    const repo = Repos.load({ path: c }).get('test');
    await repo.sync();
    await fs.writeFile(path.join(up, 'a/b'), 'two\n');
    await repo.sync();
    const want = await readTree(up);
    const store = path.join(root, 'store');

    unmountAll(store);
    expect(await fs.readdir(path.join(root, 'repo'))).toEqual([]); // what a reader would see
    const st = await runCli(['-c', c, 'status']);
    expect(st.stdout).toMatch(/NOT MOUNTED \(reposnap mount brings it back\)/);
    const m = await runCli(['-c', c, 'mount']);
    expect(m.stderr).toBe('');
    expect(m.stdout.trim()).toBe('test: mounted snapshots 1, 2');
    expect(await readTree(path.join(root, 'repo/'))).toEqual(want);
    expect((await runCli(['-c', c, 'mount'])).stdout).toBe(''); // nothing to do

    for (const reader of [['path', 'test'], ['exec', 'test', '--', 'sh', '-c', 'cat "$REPOSNAP_SNAPSHOT"/a/b'], ['diff', 'test']]) {
      unmountAll(store);
      const r = await runCli(['-c', c, ...reader]);
      expect(r.stderr, reader.join(' ')).toBe('');
      expect(r.code).toBe(0);
      expect(await readTree(path.join(root, 'repo/'))).toEqual(want);
    }

    // The prepared staging lost its mount too: the sync mounts it again and writes into it.
    unmountAll(store);
    await fs.writeFile(path.join(up, 'a/b'), 'three\n');
    const r = await repo.sync();
    expect(r).toMatchObject({ prepared: true, resumed: false });
    expect(await readTree(path.join(root, 'repo/'))).toEqual(await readTree(up));
    expect(await fs.readFile(path.join(store, 'snapshots/1/a/b'), 'utf8')).toBe('one\n');
  });

  it('status shows the stack; revert leaves a plain folder and no mount', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('revert');
    const up = path.join(root, 'upstream');
    await writeTree(up, { 'a/b': 'one\n', x: { content: '#!/bin/sh\n', mode: 0o755 } });
    const c = await writeConf(root, conf(root));
    const repo = Repos.load({ path: c }).get('test');
    await repo.sync();
    await fs.writeFile(path.join(up, 'a/b'), 'two\n');
    await fs.chmod(path.join(up, 'x'), 0o700);
    await repo.sync();
    const text = (await runCli(['-c', c, 'status'])).stdout;
    expect(text).toMatch(/test {2}\(rcu, overlayfs\)/);
    expect(text).toMatch(/layers 2 on 1\n/);
    const rv = await runCli(['-c', c, 'revert', 'test']);
    expect(rv.stderr).toBe('');
    expect(rv.code).toBe(0);
    const loc = path.join(root, 'repo');
    expect((await fs.lstat(loc)).isDirectory()).toBe(true);
    expect(overlayMounts(root)).toEqual([]);
    expect(await readTree(loc)).toEqual(await readTree(up));
    await expect(fs.lstat(path.join(root, 'store'))).rejects.toThrow(/ENOENT/);
  });

  it('migrates a plain location and syncs a git repository on top (files linked in from outside the overlay)', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('git');
    const up = path.join(root, 'upstream');
    const git = (...args: string[]) => execFileSync('git', ['-C', up, '-c', 'user.name=t', '-c', 'user.email=t@example.org', ...args], { stdio: 'pipe' });
    await writeTree(up, { 'a/b': 'one\n', 'c/d': 'd\n' });
    git('init', '-q', '-b', 'main');
    git('add', '-A');
    git('commit', '-q', '-m', 'one');
    await writeTree(path.join(root, 'repo'), { 'a/b': 'one\n', old: 'in the location before\n' });
    const c = await writeConf(root, conf(root, 'sync-git-branch = main', 'git'));
    const repo = Repos.load({ path: c }).get('test');
    expect(await repo.migrate()).toMatchObject({ id: 1, layers: ['1'] });
    await repo.sync();
    await fs.writeFile(path.join(up, 'a/b'), 'two\n');
    await fs.rm(path.join(up, 'c'), { recursive: true });
    git('add', '-A');
    git('commit', '-q', '-m', 'two');
    const r = await repo.sync();
    const tree = await readTree(path.join(root, 'repo/'));
    expect(tree['a/b']).toMatchObject({ content: 'two\n' });
    expect(tree['c/d']).toBeUndefined();
    expect((await repo.status()).snapshots.find((s) => s.id === r.snapshot?.id)?.layers?.length).toBeGreaterThan(1);
  });
});

describe('overlayfs refused where it cannot work', () => {
  it('not as root: a clear error, nothing published', async (ctx) => {
    if (skip(ctx)) return;
    const root = await fresh('nonroot');
    await writeTree(path.join(root, 'upstream'), { f: 'x\n' });
    const c = await writeConf(root, conf(root));
    execFileSync('chown', ['-R', '65534:65534', root]);
    await fs.chmod(path.dirname((mounted as Mounted).dir), 0o755); // a temporary folder, 0700
    const r = await runCli(['-c', c, 'sync'], { asUser: { uid: 65534, gid: 65534 } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`reposnap: sync-rcu-backend = overlayfs does not work for the store ${root}/store (it needs root to mount overlays)`);
    await expect(fs.lstat(path.join(root, 'store/snapshots'))).rejects.toThrow(/ENOENT/);
  });
});
