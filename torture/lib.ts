/**
 * Shared pieces of the torture suite: running the real CLI, trees whose
 * every file says which version it belongs to, and the report rows each case
 * returns. Everything runs against real processes and real filesystems.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
export const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
export const isRoot = process.getuid?.() === 0;

/** One line of a case's report. `bad` counts what the guarantee forbids. */
export interface Row {
  what: string;
  tried: number;
  /** What happened, in words and figures. */
  outcome: string;
  /** Failures of the guarantee (lost data, torn reads, wrong exits, leftovers). */
  bad: number;
  /** A baseline shown for comparison (in-place mode): its `bad` is expected. */
  baseline?: boolean;
}

export interface CaseReport {
  title: string;
  rows: Row[];
  /** Why parts were skipped on this machine. */
  skipped: string[];
}

export interface CaseOptions {
  long: boolean;
  work: string;
  /** Progress lines for the terminal. */
  log(msg: string): void;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Started {
  child: ChildProcess;
  done: Promise<RunResult>;
}

/** Start the CLI (optionally as another user through setpriv). */
export function startCli(args: string[], opts: { asUser?: { uid: number; gid: number }; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Started {
  const argv = [CLI, ...args];
  const [cmd, cmdArgs] = opts.asUser
    ? ['setpriv', [`--reuid=${opts.asUser.uid}`, `--regid=${opts.asUser.gid}`, '--clear-groups', process.execPath, ...argv]]
    : [process.execPath, argv];
  const child = spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REPOSNAP_CONFIG: '', ...opts.env }, cwd: opts.cwd ?? '/' });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/**
 * Run the CLI with REPOSNAP_FAILPOINT=`point` (see src/util/failpoint.ts),
 * send `signal` once it reports standing there, and wait for it to end.
 * Resolves with how it ended and whether the failpoint was reached (a run
 * that had nothing to do there ends by itself).
 */
export async function interruptAt(
  args: string[],
  point: string,
  signal: NodeJS.Signals,
  opts: Parameters<typeof startCli>[1] = {},
): Promise<RunResult & { reached: boolean }> {
  const p = startCli(args, { ...opts, env: { ...opts.env, REPOSNAP_FAILPOINT: point } });
  const marker = `reposnap: failpoint ${point}\n`;
  let reached = false;
  await new Promise<void>((resolve) => {
    const onData = (d: Buffer | string): void => {
      if (reached || !String(d).includes(marker)) return;
      reached = true;
      p.child.kill(signal);
      resolve();
    };
    p.child.stderr?.on('data', onData);
    void p.done.then(() => resolve());
  });
  return { ...(await p.done), reached };
}

export function cli(args: string[], opts: Parameters<typeof startCli>[1] = {}): Promise<RunResult> {
  return startCli(args, opts).done;
}

/** Run a command, resolving with its exit; never throws on a non-zero exit. */
export function run(cmd: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Run a command that must succeed. */
export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

export async function workDir(base: string, tag: string): Promise<string> {
  await fs.mkdir(base, { recursive: true });
  return fs.mkdtemp(path.join(base, `${tag}-`));
}

export function defaultWork(): string {
  return path.join(os.tmpdir(), `reposnap-torture-${process.pid}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A random integer in [0, n). Seeded so a run can be repeated. */
export function random(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** Files to write: path -> content (string), or { symlink } or { dir }. */
export type TreeSpec = Record<string, string | { symlink: string } | { dir: true; mode?: number } | { content: string; mode: number }>;

export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  for (const [rel, v] of Object.entries(spec)) {
    const p = path.join(root, rel);
    await fs.mkdir(path.dirname(p), { recursive: true });
    if (typeof v === 'string') await fs.writeFile(p, v);
    else if ('symlink' in v) {
      await fs.rm(p, { force: true });
      await fs.symlink(v.symlink, p);
    } else if ('dir' in v) {
      await fs.mkdir(p, { recursive: true });
      if (v.mode !== undefined) await fs.chmod(p, v.mode);
    } else {
      await fs.writeFile(p, v.content);
      await fs.chmod(p, v.mode);
    }
  }
}

/** An RCU repos.conf section for a local repo under `dir`. */
export function repoSection(name: string, dir: string, extra = '', uri = path.join(dir, 'upstream'), type = 'local'): string {
  return `[${name}]
location = ${path.join(dir, 'repo')}
sync-type = ${type}
sync-uri = ${uri}
sync-rcu = yes
sync-rcu-store-dir = ${path.join(dir, 'store')}
${extra}
`;
}

export async function writeConf(dir: string, text: string, name = 'repos.conf'): Promise<string> {
  const p = path.join(dir, name);
  await fs.writeFile(p, text);
  return p;
}

/**
 * A tree of `files` files over directories of 25, every file saying
 * `version`; file `only-<version mod 3>` exists in a third of the versions,
 * so that versions also differ by which files exist. Written over an
 * existing tree in place (in-place mode's upstream is rewritten like that).
 */
export async function writeVersion(root: string, files: number, version: number): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  for (let d = 0; d * 25 < files; d++) {
    const dir = path.join(root, `cat-${d}`);
    await fs.mkdir(dir, { recursive: true });
    const writes: Array<Promise<void>> = [];
    for (let i = d * 25; i < Math.min(files, (d + 1) * 25); i++) {
      writes.push(fs.writeFile(path.join(dir, `pkg-${i}.ebuild`), `version=${version}\n${'#'.repeat(i % 7 === 0 ? 3000 : 40)}\n`));
    }
    await Promise.all(writes);
  }
  for (let k = 0; k < 3; k++) await fs.rm(path.join(root, `only-${k}`), { force: true });
  await fs.writeFile(path.join(root, `only-${version % 3}`), `version=${version}\n`);
  await fs.writeFile(path.join(root, 'VERSION'), `version=${version}\n`);
}

export interface TreeRead {
  versions: Set<number>;
  files: number;
  /** Files or directories listed but gone when opened. */
  vanished: number;
  /** Files whose content is not a whole version line. */
  garbled: number;
}

/** Read every file below `root` (listing as it goes), noting the versions seen. */
export async function readVersions(root: string): Promise<TreeRead> {
  const out: TreeRead = { versions: new Set(), files: 0, vanished: 0, garbled: 0 };
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
        out.vanished++;
        return;
      }
      throw err;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.name.startsWith('.')) continue; // reposnap's stamp in a plain location
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      let text: string;
      try {
        text = await fs.readFile(p, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          out.vanished++;
          continue;
        }
        throw err;
      }
      out.files++;
      const m = /^version=(\d+)\n/.exec(text);
      if (!m) out.garbled++;
      else out.versions.add(Number(m[1]));
    }
  };
  await walk(root);
  return out;
}

/** A digest of a tree: every path, type, mode and content (symlinks by target). Names as bytes. */
export async function treeDigest(root: string, opts: { owners?: boolean } = {}): Promise<string> {
  const h = createHash('sha256');
  const walk = async (dir: Buffer, rel: string): Promise<void> => {
    const names = (await fs.readdir(dir, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('hex')}`;
      const st = await fs.lstat(p);
      h.update(`${r} ${st.mode.toString(8)}${opts.owners ? ` ${st.uid}:${st.gid}` : ''}\n`);
      if (st.isDirectory()) await walk(p, r);
      else if (st.isSymbolicLink()) h.update(await fs.readlink(p, { encoding: 'buffer' }));
      else if (st.isFile()) h.update(await fs.readFile(p));
    }
  };
  await walk(Buffer.from(root), '');
  return h.digest('hex');
}

/** The digest of the tree a location resolves to now ('' if it does not resolve). */
export async function locationDigest(location: string, opts: { owners?: boolean } = {}): Promise<string> {
  return treeDigest(await fs.realpath(location), opts).catch(() => '');
}

/** A listing of everything below `root` with sizes and mtimes, to prove it untouched. */
export async function listing(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await fs.readdir(dir)).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      const st = await fs.lstat(p);
      lines.push(`${p} ${st.mode} ${st.size} ${st.mtimeMs} ${st.ino}`);
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return lines.join('\n');
}

export async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(
    () => true,
    () => false,
  );
}

/** Whether stderr is one clean line (no stack trace). */
export function oneLine(stderr: string): boolean {
  const lines = stderr.trim().split('\n').filter((l) => l.trim() !== '');
  return lines.length >= 1 && !/\n\s+at /.test(stderr) && lines.every((l) => !/^\s+at /.test(l));
}

/** Things an interrupted operation may leave that a final collection should clear. */
export async function leftovers(store: string, location: string): Promise<string[]> {
  const out: string[] = [];
  const own = path.join(store, 'reposnap');
  const prepared = await preparedClone(store);
  for (const sub of ['staging', 'trash']) {
    for (const n of await fs.readdir(path.join(own, sub)).catch(() => [] as string[])) {
      if (sub === 'staging' && prepared !== undefined && (n === prepared || n.startsWith(`${prepared}.`))) continue;
      out.push(`${sub}/${n}`);
    }
  }
  for (const n of await fs.readdir(store).catch(() => [] as string[])) {
    if (n !== 'snapshots' && n !== 'latest' && n !== 'reposnap') out.push(n);
  }
  for (const n of await fs.readdir(own).catch(() => [] as string[])) {
    if (/tmp|\.new$|^\./.test(n)) out.push(`reposnap/${n}`);
  }
  const parent = path.dirname(location);
  const base = path.basename(location);
  for (const n of await fs.readdir(parent).catch(() => [] as string[])) {
    if (n !== base && n.includes(base) && n.includes('reposnap')) out.push(path.join(parent, n));
  }
  return out;
}

/**
 * The one staging tree a sync leaves on purpose (sync-rcu-prepare-staging,
 * on by default): a clone of the latest snapshot that no fill has touched.
 * Its tx, or undefined when there is none.
 */
async function preparedClone(store: string): Promise<string | undefined> {
  const latest = await fs.readlink(path.join(store, 'latest')).catch(() => undefined);
  const id = latest === undefined ? undefined : Number(path.basename(latest));
  const dir = path.join(store, 'reposnap', 'staging');
  for (const n of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!n.endsWith('.json')) continue;
    const info = JSON.parse(await fs.readFile(path.join(dir, n), 'utf8').catch(() => '{}')) as { state?: string; fill?: string; base?: number; rejected?: unknown };
    if (info.state === 'prepared' && info.fill === 'none' && info.rejected === undefined && info.base === id) return n.slice(0, -'.json'.length);
  }
  return undefined;
}

/** Mount a tmpfs of `size` (e.g. "8m") with `extra` options; root only. */
export async function mountTmpfs(dir: string, options: string): Promise<string | undefined> {
  if (!isRoot) return 'not root (mounting a tmpfs needs it)';
  await fs.mkdir(dir, { recursive: true });
  const r = await run('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir]);
  return r.code === 0 ? undefined : `cannot mount a tmpfs: ${r.stderr.trim()}`;
}

export async function unmount(dir: string): Promise<void> {
  const r = await run('umount', [dir]);
  if (r.code !== 0) await run('umount', ['-l', dir]);
}

/** One ustar header + data block, so hostile entries can be made (also used by test/tarball.test.ts). */
export function tarEntry(name: string, opts: { type?: string; data?: string; link?: string; mode?: number } = {}): Buffer {
  const data = Buffer.from(opts.data ?? '');
  const h = Buffer.alloc(512, 0);
  const put = (off: number, len: number, s: string): void => void h.write(s.slice(0, len), off, len, 'utf8');
  const oct = (off: number, len: number, n: number): void => put(off, len, `${n.toString(8).padStart(len - 1, '0')}\0`);
  put(0, 100, name);
  oct(100, 8, opts.mode ?? 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, data.length);
  oct(136, 12, 1700000000);
  h.fill(0x20, 148, 156);
  put(156, 1, opts.type ?? '0');
  put(157, 100, opts.link ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad]);
}

export function tarOf(...entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

/**
 * Stop `children`, and whatever each started where it leads a process group
 * of its own (spawned detached), and wait till they have exited: a shell
 * killed alone leaves its running `mv` to finish, and a daemon logs its end,
 * into a folder that is being removed meanwhile (ENOTEMPTY).
 */
export async function stopChildren(children: ChildProcess[], signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((resolve) => c.once('exit', resolve));
      try {
        process.kill(-(c.pid as number), signal); // its group, if it leads one
      } catch {
        c.kill(signal);
      }
      await exited;
    }),
  );
}
