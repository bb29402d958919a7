/**
 * Loop-mounted filesystem images for backend tests: btrfs, xfs with
 * reflink=1, and ext4 (for overlayfs, the one backend that needs no
 * particular filesystem). Making them needs root, a loop device and mkfs;
 * where any is missing the tests that need them are skipped with the
 * reason printed.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isRoot, tmpdir } from './helpers.js';

export type ImageKind = 'btrfs' | 'xfs' | 'ext4';

export interface Mounted {
  kind: ImageKind;
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
export function unavailable(kind: ImageKind): string | undefined {
  if (!isRoot) return 'not root (loop-mounting needs it)';
  if (!has(`mkfs.${kind}`)) return `mkfs.${kind} is not installed`;
  if (kind === 'btrfs' && !has('btrfs')) return 'btrfs-progs is not installed';
  if (!fs.existsSync('/dev/loop-control') && !fs.existsSync('/dev/loop0')) return 'no loop devices';
  return undefined;
}

/** Why overlays cannot be mounted here, or undefined if they can be tried. */
export function overlayUnavailable(): string | undefined {
  const why = unavailable('ext4');
  if (why) return why;
  const known = fs.readFileSync('/proc/filesystems', 'utf8');
  if (!/\boverlay\b/.test(known)) {
    try {
      execFileSync('modprobe', ['overlay'], { stdio: 'ignore' });
    } catch {
      return 'the kernel has no overlayfs (and modprobe overlay failed)';
    }
  }
  return undefined;
}

export function mountImage(kind: ImageKind, sizeMb = 512): Mounted | string {
  const why = unavailable(kind);
  if (why) return why;
  const base = tmpdir(`reposnap-${kind}`);
  const image = path.join(base, `${kind}.img`);
  const dir = path.join(base, 'mnt');
  fs.mkdirSync(dir);
  try {
    execFileSync('truncate', ['-s', `${sizeMb}M`, image]);
    if (kind === 'btrfs') execFileSync('mkfs.btrfs', ['-q', '-f', image], { stdio: 'ignore' });
    else if (kind === 'xfs') execFileSync('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', image], { stdio: 'ignore' });
    else execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'ignore' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'pipe' });
  } catch (err) {
    return `cannot mount a ${kind} image: ${String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n').pop()}`;
  }
  return {
    kind,
    dir,
    unmount() {
      // Overlays a test left mounted inside the image go first.
      const inside = fs
        .readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[4])
        .filter((m): m is string => m !== undefined && m.startsWith(`${dir}/`))
        .reverse();
      for (const m of inside) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      fs.rmSync(image, { force: true });
    },
  };
}
