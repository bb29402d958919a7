/**
 * Loop-mounted filesystem images for backend tests: btrfs, and xfs with
 * reflink=1. Making them needs root, a loop device and mkfs; where any is
 * missing the tests that need them are skipped with the reason printed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isRoot, tmpdir } from './helpers.js';

export interface Mounted {
  kind: 'btrfs' | 'xfs';
  dir: string;
  unmount(): void;
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why `kind` cannot be mounted here, or undefined if it can be tried. */
export function unavailable(kind: 'btrfs' | 'xfs'): string | undefined {
  if (!isRoot) return 'not root (loop-mounting needs it)';
  if (!has(`mkfs.${kind}`)) return `mkfs.${kind} is not installed`;
  if (kind === 'btrfs' && !has('btrfs')) return 'btrfs-progs is not installed';
  if (!fs.existsSync('/dev/loop-control') && !fs.existsSync('/dev/loop0')) return 'no loop devices';
  return undefined;
}

export function mountImage(kind: 'btrfs' | 'xfs', sizeMb = 512): Mounted | string {
  const why = unavailable(kind);
  if (why) return why;
  const base = tmpdir(`reposnap-${kind}`);
  const image = path.join(base, `${kind}.img`);
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  try {
    execFileSync('truncate', ['-s', `${sizeMb}M`, image]);
    if (kind === 'btrfs') execFileSync('mkfs.btrfs', ['-q', '-f', image], { stdio: 'ignore' });
    else execFileSync('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'pipe' });
  } catch (err) {
    return `cannot mount a ${kind} image: ${String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n').pop()}`;
  }
  return {
    kind,
    dir,
    unmount() {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      fs.rmSync(image, { force: true });
    },
  };
}
