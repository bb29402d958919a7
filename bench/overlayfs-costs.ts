/**
 * What the overlayfs backend costs, on ext4 (a loop-mounted image, as
 * root), against the hardlink clone it replaces there. Run by
 * `npm run bench:backends` (bench/backend-scaling.ts), which writes the
 * result to docs/performance-overlayfs.md.
 *
 * Per tree size (Gentoo-shaped trees from bench/gentoo-tree.ts):
 *   - prepare: opening staging on the current snapshot: a writable overlay
 *     (folders for its upper layer, one mount) against `cp -al`;
 *   - publish: unmounting it, renaming its upper layer into place, mounting
 *     the new snapshot read-only, against the hardlink backend's rename;
 *   - read: a full walk (lstat of every entry) and a full read (every file's
 *     bytes) of a plain tree, of an overlay of one layer, and of an overlay
 *     of `depth` layers (each a 1% change, as syncs make them), warm cache;
 *   - flatten: the stack of `depth` layers into one (what a sync does off
 *     the critical path when a stack reaches sync-rcu-overlay-max-layers).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { backendByName } from '../dist/backends/select.js';
import type { LayerMounts } from '../dist/backends/backend.js';
import { removeTree, syncFilesystem } from '../dist/util/fs.js';
import { flattenLayers } from '../dist/tree/flatten.js';
import { applyUpdate, generateTree } from './gentoo-tree.js';

export interface Reads {
  plain: number;
  oneLayer: number;
  half: number;
  deep: number;
}

export interface OverlayRow {
  files: number;
  depth: number;
  hardlinkCloneMs: number;
  prepareMs: number;
  hardlinkPublishMs: number;
  publishMs: number;
  flattenMs: number;
  /** Full walk (lstat of every entry) and full read (every byte), warm cache: plain, 1 layer, depth/2 layers, depth layers. */
  walkMs: Reads;
  readMs: Reads;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function walk(dir: string): void {
  execFileSync('find', [dir, '-printf', '%s %T@\n'], { stdio: ['ignore', 'ignore', 'inherit'], maxBuffer: 1 << 30 });
}

function readAll(dir: string): void {
  execFileSync('sh', ['-c', 'find "$1" -type f -exec cat {} + > /dev/null', 'sh', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/** Run on `dir` (ext4) for Gentoo-shaped trees at `scales`. */
export async function overlayCosts(dir: string, scales: number[], depth: number, runs: number, log: (s: string) => void): Promise<OverlayRow[]> {
  const layers = backendByName('overlayfs').layers as LayerMounts;
  const hardlink = backendByName('hardlink');
  const rows: OverlayRow[] = [];
  for (const scale of scales) {
    const root = await fs.mkdtemp(path.join(dir, `overlay-${scale}-`));
    const L = (n: number | string) => path.join(root, 'layers', String(n));
    await fs.mkdir(path.join(root, 'layers', 'empty'), { recursive: true });
    const info = await generateTree(L(1), scale);
    await syncFilesystem(root);
    execFileSync('sync');

    const clones: number[] = [];
    for (let r = 0; r < runs; r++) {
      const to = path.join(root, `clone-${r}`);
      clones.push(await time(() => hardlink.clone(L(1), to)));
      await removeTree(to);
    }
    const hardlinkCloneMs = median(clones);

    // prepare: what Staging.open does for an overlay.
    const prepares: number[] = [];
    const publishes: number[] = [];
    const hardlinkPublishes: number[] = [];
    for (let r = 0; r < runs; r++) {
      const staging = path.join(root, `staging-${r}`);
      const upper = path.join(root, `staging-${r}.layer`, 'upper');
      const work = path.join(root, `staging-${r}.layer`, 'work');
      prepares.push(
        await time(async () => {
          await fs.mkdir(staging);
          await fs.mkdir(upper, { recursive: true });
          await fs.mkdir(work);
          await layers.mountWritable(staging, [L(1)], upper, work);
        }),
      );
      await fs.writeFile(path.join(staging, 'metadata', 'timestamp.chk'), `run ${r}\n`);
      // publish: what the commit does for an overlay after the seal.
      const snap = path.join(root, `snap-${r}`);
      publishes.push(
        await time(async () => {
          await layers.unmount(staging);
          await removeTree(work);
          await fs.rename(upper, L(`p${r}`));
          await fs.rmdir(staging);
          await fs.mkdir(snap);
          await layers.mountReadOnly(snap, [L(`p${r}`), L(1)]);
        }),
      );
      await layers.unmount(snap);
      await removeTree(L(`p${r}`));
      await removeTree(path.join(root, `staging-${r}.layer`));
      await fs.rmdir(snap);
      // The hardlink backend's publish of a tree: one rename.
      const tree = path.join(root, `tree-${r}`);
      await fs.mkdir(tree);
      hardlinkPublishes.push(await time(() => fs.rename(tree, path.join(root, `published-${r}`))));
      await fs.rmdir(path.join(root, `published-${r}`));
    }

    // A stack of `depth` layers, each a 1% change made through a staging overlay.
    for (let k = 2; k <= depth; k++) {
      const staging = path.join(root, 'build');
      const upper = path.join(root, 'build.layer', 'upper');
      const work = path.join(root, 'build.layer', 'work');
      await fs.mkdir(staging);
      await fs.mkdir(upper, { recursive: true });
      await fs.mkdir(work);
      const lower = Array.from({ length: k - 1 }, (_, i) => L(k - 1 - i));
      await layers.mountWritable(staging, lower, upper, work);
      await applyUpdate(staging, k, 0.01);
      await layers.unmount(staging);
      await fs.rename(upper, L(k));
      await removeTree(path.join(root, 'build.layer'));
      await fs.rmdir(staging);
    }
    const one = path.join(root, 'one');
    const half = path.join(root, 'half');
    const deep = path.join(root, 'deep');
    for (const d of [one, half, deep]) await fs.mkdir(d);
    await layers.mountReadOnly(one, [L(1), L('empty')]);
    const stack = Array.from({ length: depth }, (_, i) => L(depth - i));
    await layers.mountReadOnly(half, stack.slice(-Math.max(2, Math.floor(depth / 2))));
    await layers.mountReadOnly(deep, stack);
    try {
      // In turn, run after run, so that the three share the machine's noise.
      const trees = [['plain', L(1)], ['oneLayer', one], ['half', half], ['deep', deep]] as const;
      const walks: Record<keyof Reads, number[]> = { plain: [], oneLayer: [], half: [], deep: [] };
      const reads: Record<keyof Reads, number[]> = { plain: [], oneLayer: [], half: [], deep: [] };
      for (const [, d] of trees) {
        walk(d); // warm
        readAll(d);
      }
      for (let r = 0; r < Math.max(runs * 3, 5); r++) {
        for (const [key, d] of trees) walks[key].push(await time(() => walk(d)));
        for (const [key, d] of trees) reads[key].push(await time(() => readAll(d)));
      }
      const medians = (xs: Record<keyof Reads, number[]>): Reads => ({ plain: median(xs.plain), oneLayer: median(xs.oneLayer), half: median(xs.half), deep: median(xs.deep) });
      const walkMs = medians(walks);
      const readMs = medians(reads);
      const flats: number[] = [];
      for (let r = 0; r < runs; r++) {
        const to = path.join(root, `flat-${r}`);
        flats.push(await time(() => flattenLayers(deep, stack, to)));
        await removeTree(to);
      }
      const row: OverlayRow = {
        files: info.files,
        depth,
        hardlinkCloneMs,
        prepareMs: median(prepares),
        hardlinkPublishMs: median(hardlinkPublishes),
        publishMs: median(publishes),
        flattenMs: median(flats),
        walkMs,
        readMs,
      };
      rows.push(row);
      log(
        `bench: overlayfs ${info.files} files: prepare ${row.prepareMs.toFixed(1)} ms (cp -al ${row.hardlinkCloneMs.toFixed(0)} ms), publish ${row.publishMs.toFixed(1)} ms, flatten ${depth} layers ${row.flattenMs.toFixed(0)} ms, ` +
          `walk ${show(walkMs)} ms, read ${show(readMs)} ms (plain/1/${Math.floor(depth / 2)}/${depth} layers)`,
      );
    } finally {
      await removeTree(root); // unmounts first
    }
  }
  return rows;
}

function show(r: Reads): string {
  return [r.plain, r.oneLayer, r.half, r.deep].map((x) => x.toFixed(0)).join('/');
}

function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(a / b < 0.1 ? 4 : 2)}×`;
}

export function renderOverlay(rows: OverlayRow[], header: string): string {
  const depth = rows[0]?.depth ?? 0;
  const half = Math.max(2, Math.floor(depth / 2));
  const lines = [
    '# overlayfs snapshots on ext4: costs against the hardlink clone',
    '',
    header,
    '',
    'prepare = open staging on the current snapshot (overlayfs: folders for the upper layer and one mount; hardlink: `cp -al` of the tree). publish = after the seal, make the staging tree snapshot N (overlayfs: unmount, rename the upper layer, mount N read-only on its layers; hardlink: one rename). flatten = the stack into one layer of links, done after a sync when a stack reaches `sync-rcu-overlay-max-layers`, off the next sync\'s critical path.',
    '',
    '| files | prepare: hardlink ms | prepare: overlayfs ms | overlayfs / hardlink | publish: hardlink ms | publish: overlayfs ms | flatten of the stack ms |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.files} | ${r.hardlinkCloneMs.toFixed(0)} | ${r.prepareMs.toFixed(1)} | ${ratio(r.prepareMs, r.hardlinkCloneMs)} | ${r.hardlinkPublishMs.toFixed(2)} | ${r.publishMs.toFixed(1)} | ${r.flattenMs.toFixed(0)} |`),
    '',
    `Reading, warm cache (what a reader pays for the layers; median of 9 runs (5 with --quick), the trees in turn in each): a full walk (\`find -printf\`: an lstat of every entry) and a full read (\`cat\` of every file) of the same tree as a plain folder, as an overlay of one layer, and as overlays of ${half} and ${depth} layers, each above the first a 1% change made through a staging overlay (${depth}: the deepest stack sync-rcu-overlay-max-layers allows by default).`,
    '',
    `| files | walk: plain ms | 1 layer | ${half} layers | ${depth} layers | ${depth} / plain | read: plain ms | 1 layer | ${half} layers | ${depth} layers | ${depth} / plain |`,
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${r.files} | ${r.walkMs.plain.toFixed(0)} | ${r.walkMs.oneLayer.toFixed(0)} | ${r.walkMs.half.toFixed(0)} | ${r.walkMs.deep.toFixed(0)} | ${ratio(r.walkMs.deep, r.walkMs.plain)} | ${r.readMs.plain.toFixed(0)} | ${r.readMs.oneLayer.toFixed(0)} | ${r.readMs.half.toFixed(0)} | ${r.readMs.deep.toFixed(0)} | ${ratio(r.readMs.deep, r.readMs.plain)} |`,
    ),
    '',
  ];
  return `${lines.join('\n')}\n`;
}
