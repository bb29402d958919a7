/**
 * The fast path for cloning a tree: GNU cp. It makes one system call per
 * entry from C, where a walk in Node pays a thread-pool round trip for every
 * link, mkdir, chmod and utimes (measured: docs/performance-backends.md).
 * `cp -R -P -l` hardlinks files, `--reflink=always` clones them; directory
 * modes, owners and times are preserved, symlinks copied as symlinks, names
 * kept byte for byte. When cp is not GNU cp, or fails (EXDEV for links
 * across btrfs subvolumes, a filesystem that cannot clone), the caller falls
 * back to the walk in tree.ts, which decides file by file.
 */
import { readdir } from 'node:fs/promises';
import { removeTree } from '../util/fs.js';
import { runProcess } from '../util/process.js';
import { detached } from '../util/abort.js';

let gnuCp: Promise<boolean> | undefined;

function haveGnuCp(): Promise<boolean> {
  // Asked once for the process: an aborted sync must not stop the probe and leave "no" as the answer.
  gnuCp ??= detached(() => runProcess('cp', ['--version']))
    .then((r) => r.code === 0 && /GNU coreutils/.test(r.stdout.toString()))
    .catch(() => false);
  return gnuCp;
}

/** Clone with cp; false (and nothing left behind) when the caller must do it. */
export async function cpClone(from: string, to: string, method: 'link' | 'reflink' | 'copy', intoExisting: boolean): Promise<boolean> {
  if (!(await haveGnuCp())) return false;
  const mode = method === 'link' ? ['-l'] : method === 'reflink' ? ['--reflink=always'] : ['--reflink=auto'];
  const args = ['-R', '-P', '--preserve=mode,ownership,timestamps', ...mode];
  // An orphaned cp would go on filling a staging tree that the next sync
  // may delete (it holds no lock): it dies with us.
  const end = await runProcess('cp', [...args, '-T', intoExisting ? `${from}/.` : from, to], { dieWithUs: 'KILL', stdout: 'ignore' }).catch(() => undefined);
  if (end?.code === 0) return true;
  if (intoExisting) {
    // Empty the directory again, keeping it (it may be a subvolume).
    for (const n of await readdir(to).catch(() => [] as string[])) await removeTree(`${to}/${n}`);
  } else {
    await removeTree(to);
  }
  return false;
}
