/**
 * Validating a cache of an installed-package database (vdb-shaped tree:
 * category/package-version/ with a handful of small files each): one stat of
 * the modification stamp against stat'ing every package directory (what a
 * consumer must do without a stamp). Warm caches, median of many rounds.
 *
 *   npm run bench:stamps              1k, 5k and 20k packages
 *   npm run bench:stamps -- --quick   200 and 1000 packages (what CI runs)
 *   --out FILE                        default docs/performance-stamps.md
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { modify } from '../dist/stamp/stamp.js';
import { StampedCache, stampGeneration } from '../dist/stamp/cache.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const outIdx = args.indexOf('--out');
const out = outIdx >= 0 ? (args[outIdx + 1] as string) : path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'docs', 'performance-stamps.md');
const SIZES = quick ? [200, 1000] : [1000, 5000, 20_000];
const ROUNDS = quick ? 5 : 21;
const FILES = ['CONTENTS', 'SLOT', 'EAPI', 'repository', 'USE', 'BUILD_TIME', 'COUNTER', 'DEFINED_PHASES'];

async function makeVdb(root: string, packages: number): Promise<void> {
  const cats = Math.max(1, Math.round(packages / 60));
  for (let i = 0; i < packages; i++) {
    const dir = path.join(root, `cat-${i % cats}`, `pkg${i}-1.${i % 7}`);
    await fs.mkdir(dir, { recursive: true });
    await Promise.all(FILES.map((f) => fs.writeFile(path.join(dir, f), f === 'CONTENTS' ? `obj /usr/bin/p${i} 0 0\n`.repeat(20) : `${f}-${i}\n`)));
  }
}

/** The stamp-less way: enumerate categories and stat every package directory. */
async function statAll(root: string): Promise<string> {
  let sig = '';
  for (const cat of await fs.readdir(root)) {
    if (cat.startsWith('.')) continue;
    for (const pkg of await fs.readdir(path.join(root, cat))) {
      const st = await fs.stat(path.join(root, cat, pkg), { bigint: true });
      sig += `${st.ino}:${st.mtimeNs};`;
    }
  }
  return sig;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 2; i++) await fn(); // warm
  const t: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

const base = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-vdb-'));
const rows: Array<{ packages: number; stampMs: number; statAllMs: number; ratio: number }> = [];
try {
  for (const n of SIZES) {
    const root = path.join(base, String(n));
    await makeVdb(root, n);
    await modify(root, () => Promise.resolve());
    const cache = new StampedCache(stampGeneration(root), () => statAll(root));
    await cache.get(); // stored
    const stampMs = await timeIt(async () => {
      const r = await cache.get();
      if (!r.hit) throw new Error('expected a hit');
    });
    const statAllMs = await timeIt(() => statAll(root));
    rows.push({ packages: n, stampMs, statAllMs, ratio: statAllMs / stampMs });
    console.error(`bench: ${n} packages: stamp ${stampMs.toFixed(3)} ms, stat all ${statAllMs.toFixed(2)} ms, ${(statAllMs / stampMs).toFixed(0)}x`);
  }
} finally {
  await fs.rm(base, { recursive: true, force: true });
}
const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Linux ${os.release()}, Node ${process.version}`;
const md = [
  '# Modification stamps: validating a cache of a vdb-shaped tree',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on ${machine} with \`npm run bench:stamps${quick ? ' -- --quick' : ''}\`; median of ${ROUNDS} warm rounds.`,
  `Each package directory holds ${FILES.length} small files. "stamp" = StampedCache.get() answering from the cache after one lstat of .modification_time;`,
  '"stat all" = listing every category and stat\'ing every package directory, what a consumer without a stamp does to validate.',
  '',
  '| packages | stamp ms | stat all ms | stat all / stamp |',
  '|---:|---:|---:|---:|',
  ...rows.map((r) => `| ${r.packages} | ${r.stampMs.toFixed(3)} | ${r.statAllMs.toFixed(2)} | ${r.ratio.toFixed(0)}× |`),
  '',
].join('\n');
await fs.mkdir(path.dirname(out), { recursive: true });
await fs.writeFile(out, `${md}\n`);
await fs.writeFile(out.replace(/\.md$/, '.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, rounds: ROUNDS, rows }, null, 2)}\n`);
console.error(`bench: wrote ${out}`);
