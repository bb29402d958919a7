/**
 * Mounts: reading the mount table (/proc/self/mountinfo), mounting an
 * overlay and unmounting with util-linux's mount(8) and umount(8).
 *
 * Overlay options name their folders relative to `cwd` (the folder the
 * mount runs in): short names keep a deep stack within the one page the
 * kernel accepts for options, and make the options independent of the
 * store's path, which may hold characters the option syntax reserves
 * (`,` `:` `\`).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode, ReposnapError } from '../errors.js';
import { runProcess } from './process.js';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  /** Per-superblock options (an overlay's lowerdir=..., upperdir=...). */
  superOptions: string;
  /** Optional fields: shared:N, master:N, ... */
  propagation: string[];
}

/** Undo mountinfo's octal escapes (\040 for a space, ...). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export async function readMounts(): Promise<MountEntry[]> {
  const text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash < 0) continue;
    out.push({
      mountPoint: unescape(fields[4] as string),
      fsType: fields[dash + 1] as string,
      superOptions: fields[dash + 3] ?? '',
      propagation: fields.slice(6, dash),
    });
  }
  return out;
}

async function canonical(p: string): Promise<string | undefined> {
  try {
    return await fs.realpath(p);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Mounts at `dir` or below it, deepest first (the order to unmount them in). */
export async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const real = await canonical(dir);
  if (real === undefined) return [];
  const prefix = real === '/' ? '/' : `${real}/`;
  return (await readMounts()).filter((m) => m.mountPoint === real || m.mountPoint.startsWith(prefix)).reverse();
}

/** The canonical paths of every mount point at or below `dir`. */
export async function mountPointsUnder(dir: string): Promise<Set<string>> {
  return new Set((await mountsUnder(dir)).map((m) => m.mountPoint));
}

/** Whether something is mounted at `p` itself. */
export async function isMountPoint(p: string): Promise<boolean> {
  const real = await canonical(p);
  if (real === undefined) return false;
  return (await readMounts()).some((m) => m.mountPoint === real);
}

/** Characters an overlay option value may hold without escaping. */
const SAFE_OPTION = /^[A-Za-z0-9._/+-]+$/;

function optionPath(cwd: string, p: string): string {
  const rel = path.relative(cwd, p) || '.';
  if (!SAFE_OPTION.test(rel)) throw new ReposnapError('EINTERNAL', `overlay layer ${p} has a name the mount options cannot hold`);
  return rel;
}

export interface OverlaySpec {
  /** Lower layers, top first. Without `upper`, at least two. */
  lower: string[];
  /** Writable upper layer and its work folder (same filesystem); none: a read-only mount. */
  upper?: { dir: string; work: string };
  /** Where mount runs; every layer is named relative to it. */
  cwd: string;
}

/**
 * Mount an overlay at `at`. No index, no redirects, no metacopy, whatever
 * the module's defaults: a renamed merged folder is copied up (EXDEV to the
 * renamer), and every layer stays a plain tree plus whiteouts and opaque
 * folders, readable on its own and by any kernel.
 */
export async function mountOverlay(at: string, spec: OverlaySpec): Promise<void> {
  const opts = [`lowerdir=${spec.lower.map((l) => optionPath(spec.cwd, l)).join(':')}`];
  if (spec.upper) {
    opts.push(`upperdir=${optionPath(spec.cwd, spec.upper.dir)}`, `workdir=${optionPath(spec.cwd, spec.upper.work)}`, 'redirect_dir=off');
  } else {
    opts.unshift('ro');
  }
  opts.push('index=off', 'metacopy=off');
  const data = opts.join(',');
  // The legacy mount(2) takes one page of options.
  if (data.length > 4000) throw new ReposnapError('ESTORE', `cannot mount ${at}: its ${spec.lower.length} layers do not fit in the mount options`);
  const end = await runProcess('mount', ['-t', 'overlay', '-o', data, 'overlay', at], { cwd: spec.cwd, stdout: 'ignore' });
  if (end.code !== 0) {
    throw new ReposnapError('ESTORE', `cannot mount an overlay at ${at}: ${lastLine(end.stderr) || `mount exit ${end.code}`}`);
  }
}

/**
 * Unmount `at`. Busy (a process has a file or its working folder in it):
 * with `lazy`, detach it now and let the kernel finish when the last user
 * is gone; without, fail with EBUSY.
 */
export async function unmount(at: string, opts: { lazy?: boolean } = {}): Promise<void> {
  let end = await runProcess('umount', ['--', at], { stdout: 'ignore' });
  if (end.code !== 0 && /busy/i.test(end.stderr) && opts.lazy) end = await runProcess('umount', ['-l', '--', at], { stdout: 'ignore' });
  if (end.code === 0) return;
  const e = new Error(`cannot unmount ${at}: ${lastLine(end.stderr) || `umount exit ${end.code}`}`) as Error & { code?: string };
  e.code = /busy/i.test(end.stderr) ? 'EBUSY' : /not mounted|no mount point/i.test(end.stderr) ? 'EINVAL' : 'EIO';
  throw e;
}

function lastLine(s: string): string {
  return s.trim().split('\n').pop()?.replace(/^u?mount(\(\d+\))?: /, '') ?? '';
}

/**
 * Why mounts made here would not be seen by other processes, if we can
 * tell: this process runs in a mount namespace of its own (a systemd unit
 * with ProtectSystem=, PrivateTmp=, ReadWritePaths=... gets one), or the
 * mount holding `dir` only receives mounts from another namespace.
 */
export async function privateNamespace(dir: string): Promise<string | undefined> {
  try {
    const [mine, init] = await Promise.all([fs.stat('/proc/self/ns/mnt'), fs.stat('/proc/1/ns/mnt')]);
    if (mine.ino !== init.ino) return 'this process runs in a mount namespace of its own (a sandboxed service?), so nobody else would see the snapshots';
    return undefined;
  } catch {
    // /proc/1 hidden from us: judge by the propagation of the mount holding dir.
  }
  const real = await canonical(dir);
  if (real === undefined) return undefined;
  let holder: MountEntry | undefined;
  for (const m of await readMounts()) {
    if (real === m.mountPoint || real.startsWith(m.mountPoint === '/' ? '/' : `${m.mountPoint}/`)) {
      if (!holder || m.mountPoint.length >= holder.mountPoint.length) holder = m;
    }
  }
  if (holder && holder.propagation.some((p) => p.startsWith('master:')) && !holder.propagation.some((p) => p.startsWith('shared:'))) {
    return `the mount holding it (${holder.mountPoint}) only receives mounts from another namespace (a sandboxed service?), so nobody else would see the snapshots`;
  }
  return undefined;
}
