/**
 * The fast path for cloning a tree: GNU cp. It makes one system call per
 * entry from C, where a walk in Node pays a thread-pool round trip for every
 * link, mkdir, chmod and utimes (measured: docs/performance-backends.md).
 * `cp -R -P -l` hardlinks files, `--reflink=always` clones them; directory
 * modes, owners and times are preserved, symlinks copied as symlinks, names
 * kept byte for byte. When cp is not GNU cp, or fails (EXDEV for links
 * across btrfs subvolumes, a filesystem that cannot clone), the caller falls
 * back to the walk in tree.ts, which decides file by file.
 *
 * cp is single-threaded and a clone is CPU-bound once the tree is cached
 * (a system call per entry), so on a machine with more than one core the
 * top-level entries are shared out between one cp per core (lanes). A
 * Gentoo tree is lopsided (metadata/md5-cache alone holds a quarter of its
 * entries, below a folder of three), so each top-level folder's size is
 * estimated from its listing and one of its sub-folders' (see estimate) and
 * the biggest go first, each to the lane with the least work so far.
 * Measured at 108k files on ext4, two cores: 2.5-2.8 s for one cp, 1.6-1.7 s
 * for two.
 */
import { readdir, lstat, mkdir, chown, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { removeTree } from '../util/fs.js';
import { runProcess } from '../util/process.js';
import { detached } from '../util/abort.js';
import { mapLimit } from '../util/limit.js';
import { isRoot } from '../util/identity.js';

let gnuCp: Promise<boolean> | undefined;

function haveGnuCp(): Promise<boolean> {
  // Asked once for the process: an aborted sync must not stop the probe and leave "no" as the answer.
  gnuCp ??= detached(() => runProcess('cp', ['--version']))
    .then((r) => r.code === 0 && /GNU coreutils/.test(r.stdout.toString()))
    .catch(() => false);
  return gnuCp;
}

/**
 * How many cp processes share a clone: one per core, at most four (past
 * that, the disk and the kernel's locks bound it, not the CPU).
 */
export function cloneLanes(): number {
  const forced = Number(process.env.REPOSNAP_CLONE_LANES);
  if (Number.isInteger(forced) && forced >= 1) return Math.min(forced, 16);
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

/** Clone with cp; false (and nothing left behind) when the caller must do it. */
export async function cpClone(from: string, to: string, method: 'link' | 'reflink' | 'copy', intoExisting: boolean): Promise<boolean> {
  if (!(await haveGnuCp())) return false;
  const mode = method === 'link' ? ['-l'] : method === 'reflink' ? ['--reflink=always'] : ['--reflink=auto'];
  const args = ['-R', '-P', '--preserve=mode,ownership,timestamps', ...mode];
  const lanes = cloneLanes();
  const shares = lanes > 1 ? await shareOut(from, lanes).catch(() => undefined) : undefined;
  const ok = shares ? await splitClone(from, to, args, shares, intoExisting) : await wholeClone(from, to, args, intoExisting);
  if (ok) return true;
  if (intoExisting) {
    // Empty the directory again, keeping it (it may be a subvolume).
    for (const n of await readdir(to).catch(() => [] as string[])) await removeTree(`${to}/${n}`);
  } else {
    await removeTree(to);
  }
  return false;
}

/** One cp for the whole tree. */
async function wholeClone(from: string, to: string, args: string[], intoExisting: boolean): Promise<boolean> {
  // An orphaned cp would go on filling a staging tree that the next sync
  // may delete (it holds no lock): it dies with us.
  const end = await runProcess('cp', [...args, '-T', intoExisting ? `${from}/.` : from, to], { dieWithUs: 'KILL', stdout: 'ignore' }).catch(() => undefined);
  return end?.code === 0;
}

/**
 * One cp per share of the top-level names, side by side, into `to`; then
 * the top folder's own owner, mode and times, as `cp -T` would have set
 * them (after its entries were made, which moved its time).
 */
async function splitClone(from: string, to: string, args: string[], shares: string[][], intoExisting: boolean): Promise<boolean> {
  if (!intoExisting) {
    try {
      await mkdir(to, { mode: 0o700 });
    } catch {
      return false;
    }
  }
  const ends = await Promise.all(
    shares.map((names) =>
      // Run in `from`, so that the names are short; `to` made absolute for it.
      runProcess('cp', [...args, '-t', path.resolve(to), '--', ...names], { cwd: from, dieWithUs: 'KILL', stdout: 'ignore' }).catch(() => undefined),
    ),
  );
  if (!ends.every((e) => e?.code === 0)) return false;
  try {
    const st = await lstat(from);
    if (isRoot) await chown(to, st.uid, st.gid);
    // chown may clear set-id bits, so the mode comes after it.
    await chmod(to, st.mode & 0o7777);
    // touch keeps the nanoseconds that fs.utimes would round away.
    const touched = await runProcess('touch', ['-c', '-m', '-a', '-r', from, '--', to], { stdout: 'ignore' });
    return touched.code === 0;
  } catch {
    return false;
  }
}

/**
 * The top-level names of `from` dealt into `lanes` shares of about equal
 * work, biggest first, each to the share with the least so far; undefined
 * where splitting is not worth it (fewer than two names) or not possible
 * (a name that is not UTF-8 would not survive being an argument).
 */
async function shareOut(from: string, lanes: number): Promise<string[][] | undefined> {
  const entries = await readdir(from, { withFileTypes: true, encoding: 'buffer' });
  if (entries.length < 2) return undefined;
  const weighed: Array<{ name: string; weight: number }> = [];
  for (const e of entries) {
    const name = e.name.toString('utf8');
    if (!Buffer.from(name, 'utf8').equals(e.name)) return undefined;
    weighed.push({ name, weight: 1 });
  }
  await mapLimit(
    weighed.filter((_, i) => entries[i]?.isDirectory()),
    8,
    async (w) => {
      w.weight = await estimate(`${from}/${w.name}`);
    },
  );
  weighed.sort((a, b) => b.weight - a.weight);
  const shares = Array.from({ length: Math.min(lanes, weighed.length) }, () => ({ names: [] as string[], work: 0 }));
  for (const w of weighed) {
    const least = shares.reduce((a, b) => (b.work < a.work ? b : a));
    least.names.push(w.name);
    least.work += w.weight;
  }
  return shares.map((s) => s.names);
}

/**
 * About how many entries a folder holds, from a few listings: its own, and
 * a sample of its sub-folders' (the first, middle and last), taken as
 * typical of the others (a category of packages; md5-cache's categories of
 * cache files). A folder of a few sub-folders (metadata: glsa, md5-cache)
 * is looked into further, since there one sub-folder says little of the
 * next.
 */
async function estimate(dir: string, depth = 0): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const folders = entries.filter((e) => e.isDirectory()).map((e) => `${dir}/${e.name}`);
  const own = 1 + entries.length - folders.length;
  if (folders.length === 0) return own;
  if (folders.length <= 4 && depth < 3) {
    let sum = own;
    for (const f of folders) sum += await estimate(f, depth + 1);
    return sum;
  }
  const sample = [...new Set([folders[0], folders[folders.length >> 1], folders[folders.length - 1]])] as string[];
  let listed = 0;
  for (const f of sample) listed += (await readdir(f).catch(() => [] as string[])).length;
  return own + folders.length * (1 + listed / sample.length);
}
