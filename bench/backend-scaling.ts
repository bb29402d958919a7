/**
 * How the cost of one snapshot grows with the tree, per backend.
 *
 * For each filesystem this machine can offer (the temporary directory's own,
 * and as root loop-mounted btrfs and xfs with reflink=1) and each tree size,
 * build a tree of small files as a published snapshot, then time, per
 * backend that works there: clone (latest -> staging), seal (+ freeze), and
 * delete. Medians of a few runs; ratios are between sizes and backends
 * measured in the same run (these machines are shared and noisy).
 *
 * As root, also overlayfs on a loop-mounted ext4 image (bench/overlayfs-costs.ts):
 * opening staging against the hardlink clone, publishing, reading through a
 * stack and flattening it, for Gentoo-shaped trees of about 30k and 108k
 * files; written to docs/performance-overlayfs.md.
 *
 *   npm run bench:backends              sizes 10k and 200k files (overlayfs: 30k and 108k)
 *   npm run bench:backends -- --quick   sizes 1k and 5k (what CI runs; overlayfs: 1.2k and 6k)
 *   --out FILE                          where the markdown goes (default docs/performance-backends.md;
 *                                       overlayfs: FILE with -overlayfs before .md)
 *   --only btrfs,tmp                    only these filesystems (tmp, btrfs, xfs, ext4 = overlayfs)
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backendByName } from '../dist/backends/select.js';
import type { ConcreteBackendName } from '../dist/backends/backend.js';
import { removeTree, syncFilesystem } from '../dist/util/fs.js';
import { OVERLAY_MAX_LAYERS } from '../dist/config/repos.js';
import { overlayCosts, renderOverlay, type OverlayRow } from './overlayfs-costs.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const outIdx = args.indexOf('--out');
const out = outIdx >= 0 ? (args[outIdx + 1] as string) : path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'docs', 'performance-backends.md');
const SIZES = quick ? [1000, 5000] : [10_000, 200_000];
const RUNS = quick ? 1 : 3;
const isRoot = process.getuid?.() === 0;
const onlyIdx = args.indexOf('--only');
const ONLY = onlyIdx >= 0 ? (args[onlyIdx + 1] as string).split(',') : ['tmp', 'btrfs', 'xfs', 'ext4'];
/** Gentoo-shaped trees (bench/gentoo-tree.ts): scale 0.25 is about 30k files, 0.9 about 108k. */
const OVERLAY_SCALES = quick ? [0.01, 0.05] : [0.25, 0.9];
/** The stack read and flattened: sync-rcu-overlay-max-layers' default. */
const OVERLAY_DEPTH = OVERLAY_MAX_LAYERS;

interface Row {
  fs: string;
  backend: ConcreteBackendName;
  files: number;
  cloneMs: number;
  sealMs: number;
  deleteMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

/** `files` small files, 100 per directory, 50 directories per category. */
async function fillTree(root: string, files: number): Promise<void> {
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < files; i++) {
    const dir = path.join(root, `cat-${Math.floor(i / 5000)}`, `pkg-${Math.floor(i / 100)}`);
    if (i % 100 === 0) await fs.mkdir(dir, { recursive: true });
    writes.push(fs.writeFile(path.join(dir, `f${i}.ebuild`), `EAPI=8\n# ${i}\n${'x'.repeat(100 + (i % 1900))}\n`));
    if (writes.length >= 256) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
}

function mount(kind: 'btrfs' | 'xfs' | 'ext4', base: string): string | undefined {
  if (!isRoot) return undefined;
  const img = path.join(base, `${kind}.img`);
  const dir = path.join(base, kind);
  try {
    execFileSync('truncate', ['-s', quick ? '1G' : '6G', img]);
    const mkfs = kind === 'btrfs' ? ['-q', '-f', img] : kind === 'xfs' ? ['-q', '-f', '-m', 'reflink=1', img] : ['-q', '-F', '-i', '8192', img];
    execFileSync(`mkfs.${kind}`, mkfs, { stdio: 'ignore' });
    execFileSync('mkdir', ['-p', dir]);
    execFileSync('mount', ['-o', 'loop', img, dir], { stdio: 'ignore' });
    return dir;
  } catch (err) {
    console.error(`bench: no ${kind} (${String(err).split('\n')[0]})`);
    return undefined;
  }
}

async function main(): Promise<void> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-bench-'));
  const filesystems: Array<{ name: string; dir: string; umount?: () => void }> = ONLY.includes('tmp') ? [{ name: `tmp (${fsType(base)})`, dir: base }] : [];
  for (const kind of (['btrfs', 'xfs'] as const).filter((k) => ONLY.includes(k))) {
    const dir = mount(kind, base);
    if (dir) filesystems.push({ name: kind === 'xfs' ? 'xfs (reflink=1)' : 'btrfs', dir, umount: () => execFileSync('umount', [dir]) });
  }
  const rows: Row[] = [];
  let overlayRows: OverlayRow[] = [];
  try {
    if (ONLY.includes('ext4')) {
      const dir = mount('ext4', base);
      if (dir) {
        filesystems.push({ name: 'ext4', dir, umount: () => execFileSync('umount', [dir]) });
        overlayRows = await overlayCosts(dir, OVERLAY_SCALES, OVERLAY_DEPTH, RUNS, (line) => console.error(line));
        filesystems.pop();
        execFileSync('umount', [dir]);
      } else console.error('bench: no overlayfs rows (they need root and a loop-mounted ext4 image)');
    }
    for (const f of filesystems) {
      const usable: ConcreteBackendName[] = [];
      for (const name of ['btrfs', 'reflink', 'hardlink'] as const) if ((await backendByName(name).probe(f.dir)) === true) usable.push(name);
      for (const files of SIZES) {
        for (const name of usable) {
          const backend = backendByName(name);
          const latest = path.join(f.dir, `latest-${name}-${files}`);
          await backend.createEmpty(latest);
          await fillTree(latest, files);
          await syncFilesystem(latest);
          await backend.freeze?.(latest);
          const clone: number[] = [];
          const seal: number[] = [];
          const del: number[] = [];
          for (let r = 0; r < RUNS; r++) {
            const staging = path.join(f.dir, `staging-${name}-${files}-${r}`);
            execFileSync('sync');
            clone.push(await time(() => backend.clone(latest, staging)));
            seal.push(await time(async () => {
              await syncFilesystem(staging);
              await backend.freeze?.(staging);
            }));
            del.push(await time(() => removeTree(staging)));
          }
          await removeTree(latest);
          const row = { fs: f.name, backend: name, files, cloneMs: median(clone), sealMs: median(seal), deleteMs: median(del) };
          rows.push(row);
          console.error(`bench: ${row.fs} ${row.backend} ${files} files: clone ${row.cloneMs.toFixed(1)} ms, seal ${row.sealMs.toFixed(1)} ms, delete ${row.deleteMs.toFixed(1)} ms`);
        }
      }
    }
  } finally {
    for (const f of filesystems) f.umount?.();
    await fs.rm(base, { recursive: true, force: true });
  }
  if (rows.length > 0) {
    await fs.mkdir(path.dirname(out), { recursive: true });
    await fs.writeFile(out, render(rows));
    await fs.writeFile(out.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), sizes: SIZES, runs: RUNS, rows }, null, 2)}\n`);
    console.error(`bench: wrote ${out}`);
  }
  if (overlayRows.length > 0) {
    const overlayOut = out.endsWith('-backends.md') ? out.replace(/-backends\.md$/, '-overlayfs.md') : out.replace(/\.md$/, '-overlayfs.md');
    const header = `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()} with \`npm run bench:backends${quick ? ' -- --quick' : ''}\` (median of ${RUNS} run${RUNS > 1 ? 's' : ''}), ext4 on a loop-mounted image (mkfs.ext4 -i 8192).`;
    await fs.writeFile(overlayOut, renderOverlay(overlayRows, header));
    await fs.writeFile(overlayOut.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), machine: machine(), scales: OVERLAY_SCALES, depth: OVERLAY_DEPTH, runs: RUNS, rows: overlayRows }, null, 2)}\n`);
    console.error(`bench: wrote ${overlayOut}`);
  }
}

function fsType(p: string): string {
  try {
    return execFileSync('stat', ['-f', '-c', '%T', p], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

function render(rows: Row[]): string {
  const [small, large] = SIZES as [number, number];
  const lines = [
    '# Snapshot backends: cost per snapshot against tree size',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()} with \`npm run bench:backends${quick ? ' -- --quick' : ''}\` (median of ${RUNS} run${RUNS > 1 ? 's' : ''}).`,
    'clone = latest snapshot into a new staging tree; seal = make it durable (syncfs) and, for btrfs, read-only; delete = remove a staging tree.',
    '',
    '| filesystem | backend | files | clone ms | seal ms | delete ms |',
    '|---|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.fs} | ${r.backend} | ${r.files} | ${r.cloneMs.toFixed(1)} | ${r.sealMs.toFixed(1)} | ${r.deleteMs.toFixed(1)} |`),
    '',
    `Growth from ${small} to ${large} files (${(large / small).toFixed(0)}× the files):`,
    '',
    '| filesystem | backend | clone × | delete × |',
    '|---|---|---:|---:|',
  ];
  for (const r of rows.filter((x) => x.files === large)) {
    const s = rows.find((x) => x.fs === r.fs && x.backend === r.backend && x.files === small);
    if (!s) continue;
    lines.push(`| ${r.fs} | ${r.backend} | ${(r.cloneMs / s.cloneMs).toFixed(2)} | ${(r.deleteMs / s.deleteMs).toFixed(2)} |`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}

await main();
