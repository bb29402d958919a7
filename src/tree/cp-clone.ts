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
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { dyingWithUs, trackChild } from '../util/children.js';
import { removeTree } from '../util/fs.js';

const execFileP = promisify(execFile);
let gnuCp: Promise<boolean> | undefined;

function haveGnuCp(): Promise<boolean> {
  gnuCp ??= execFileP('cp', ['--version'])
    .then((r) => /GNU coreutils/.test(r.stdout))
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
  const [cmd, argv] = await dyingWithUs('KILL', 'cp', [...args, '-T', intoExisting ? `${from}/.` : from, to]);
  const run = execFileP(cmd, argv);
  trackChild(run.child);
  try {
    await run;
    return true;
  } catch {
    if (intoExisting) {
      // Empty the directory again, keeping it (it may be a subvolume).
      const { readdir } = await import('node:fs/promises');
      for (const n of await readdir(to).catch(() => [] as string[])) await removeTree(`${to}/${n}`);
    } else {
      await removeTree(to);
    }
    return false;
  }
}
