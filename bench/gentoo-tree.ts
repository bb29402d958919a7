/**
 * A deterministic Gentoo-shaped repository tree, and the update a day of
 * upstream work makes to it.
 *
 * At scale 1: about 170 categories holding about 19.5k packages, each with a
 * Manifest (0.2-4 KB), a metadata.xml (0.3-1.2 KB), one or more ebuilds
 * (0.6-6 KB; about 31k in all) and for about 30% a files/ folder of patches
 * (log-normal sizes around 2 KB); a metadata/md5-cache entry (0.4-1.5 KB) per
 * ebuild; about 300 eclasses (2-40 KB), 2000 licenses, 4000 GLSA files and
 * 3000 profile files; metadata/timestamp.chk.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** mulberry32: small, fast, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = Buffer.from('abcdefghijklmnopqrstuvwxyz0123456789 =_-"\n#$(){}[]/.ABCDEFGHIJ');

function text(r: () => number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = ALPHABET[Math.floor(r() * ALPHABET.length)] as number;
  return b;
}

function between(r: () => number, lo: number, hi: number): number {
  return Math.floor(lo + r() * (hi - lo));
}

function logNormal(r: () => number, median: number): number {
  // Box-Muller, sigma 0.8
  const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return Math.max(64, Math.min(200_000, Math.round(median * Math.exp(0.8 * z))));
}

export interface TreeInfo {
  files: number;
  dirs: number;
  bytes: number;
}

/** Write the tree at `root` (which must not exist). */
export async function generateTree(root: string, scale: number, seed = 1): Promise<TreeInfo> {
  const r = rng(seed);
  const info: TreeInfo = { files: 0, dirs: 0, bytes: 0 };
  const pending: Array<Promise<void>> = [];
  const flush = async (): Promise<void> => {
    await Promise.all(pending.splice(0));
  };
  const mkdir = async (d: string): Promise<void> => {
    await fs.mkdir(d, { recursive: true });
    info.dirs++;
  };
  const file = async (p: string, size: number): Promise<void> => {
    const body = text(r, size);
    info.files++;
    info.bytes += size;
    pending.push(fs.writeFile(p, body));
    if (pending.length >= 128) await flush();
  };

  const categories = Math.max(2, Math.round(170 * scale));
  const packages = Math.max(4, Math.round(19_500 * scale));
  const ebuildTarget = Math.round(31_000 * scale);
  for (let c = 0; c < categories; c++) await mkdir(path.join(root, `cat${c}-misc`));
  await mkdir(path.join(root, 'metadata', 'md5-cache'));
  for (let c = 0; c < categories; c++) await mkdir(path.join(root, 'metadata', 'md5-cache', `cat${c}-misc`));
  let ebuilds = 0;
  for (let p = 0; p < packages; p++) {
    const cat = `cat${p % categories}-misc`;
    const pkg = `pkg${p}`;
    const dir = path.join(root, cat, pkg);
    await mkdir(dir);
    await file(path.join(dir, 'Manifest'), between(r, 200, 4000));
    await file(path.join(dir, 'metadata.xml'), between(r, 300, 1200));
    // Spread about ebuildTarget ebuilds over the packages: 1 + extra.
    const left = ebuildTarget - ebuilds;
    const remainingPkgs = packages - p;
    const n = Math.max(1, Math.round((left / remainingPkgs) * (0.5 + r())));
    for (let v = 0; v < n; v++) {
      await file(path.join(dir, `${pkg}-${v}.${between(r, 0, 20)}.ebuild`), between(r, 600, 6000));
      await file(path.join(root, 'metadata', 'md5-cache', cat, `${pkg}-${v}`), between(r, 400, 1500));
      ebuilds++;
    }
    if (r() < 0.3) {
      await mkdir(path.join(dir, 'files'));
      const patches = 1 + Math.floor(r() * 2.5);
      for (let i = 0; i < patches; i++) await file(path.join(dir, 'files', `${pkg}-fix${i}.patch`), logNormal(r, 2048));
    }
  }
  const flat = async (dir: string, count: number, lo: number, hi: number, name: (i: number) => string): Promise<void> => {
    await mkdir(path.join(root, dir));
    for (let i = 0; i < count; i++) await file(path.join(root, dir, name(i)), between(r, lo, hi));
  };
  await flat('eclass', Math.max(1, Math.round(300 * scale)), 2000, 40_000, (i) => `e${i}.eclass`);
  await flat('licenses', Math.max(1, Math.round(2000 * scale)), 500, 20_000, (i) => `LICENSE-${i}`);
  await flat('metadata/glsa', Math.max(1, Math.round(4000 * scale)), 1000, 6000, (i) => `glsa-${200000 + i}.xml`);
  const profiles = Math.max(1, Math.round(3000 * scale));
  for (let i = 0; i < profiles; i++) {
    const d = path.join(root, 'profiles', `p${i % 60}`);
    if (i < 60) await mkdir(d);
    await file(path.join(d, `file${i}`), between(r, 50, 3000));
  }
  await flush();
  await fs.writeFile(path.join(root, 'metadata', 'timestamp.chk'), 'Sat, 21 Nov 2026 00:00:00 +0000\n');
  info.files++;
  return info;
}

/** Every regular file under root, sorted (for picking files to change). */
async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  for (const e of entries) if (e.isFile()) out.push(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  return out.sort();
}

/**
 * A day of upstream work: rewrite `fraction` of the files (1% by default; a
 * few hours' work is nearer 0.1%), remove 10 and add 10, bump timestamp.chk.
 * Untouched files keep their mtimes.
 */
export async function applyUpdate(root: string, seed = 2, fraction = 0.01): Promise<{ changed: number; removed: number; added: number }> {
  const r = rng(seed);
  const files = (await listFiles(root)).filter((f) => !f.endsWith('timestamp.chk'));
  const changed = Math.max(1, Math.round(files.length * fraction));
  const picked = new Set<number>();
  while (picked.size < changed + 20) picked.add(Math.floor(r() * files.length));
  const idx = [...picked];
  for (const i of idx.slice(0, changed)) {
    const f = files[i] as string;
    const size = (await fs.stat(f)).size;
    await fs.writeFile(f, text(r, Math.max(64, Math.round(size * (0.8 + r() * 0.4)))));
  }
  for (const i of idx.slice(changed, changed + 10)) await fs.rm(files[i] as string, { force: true });
  for (let i = 0; i < 10; i++) {
    const d = path.dirname(files[idx[changed + 10 + i] as number] as string);
    await fs.writeFile(path.join(d, `new-${seed}-${i}.ebuild`), text(r, between(r, 600, 6000)));
  }
  await fs.writeFile(path.join(root, 'metadata', 'timestamp.chk'), `Sun, 22 Nov 2026 00:00:${String(seed).padStart(2, '0')} +0000\n`);
  return { changed, removed: 10, added: 10 };
}
