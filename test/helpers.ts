/**
 * Test helpers: temporary directories, trees read back, servers' ports, and
 * the real reposnap CLI run as a separate process. What the torture suite
 * needs too (the CLI runner, trees, configuration writers) lives in its kit,
 * torture/lib.ts, and is re-exported here: one kit for both. So are the
 * signed Manifest trees and keys of bench/manifest-writer.ts.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCli as startTortureCli } from '../torture/lib.js';
import { afterAll } from 'vitest';
const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/** A fresh directory, removed after the test file. */
export function tmpdir(tag = 'reposnap'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), `${tag}-`));
  made.push(d);
  return d;
}

export { CLI, isRoot, ROOT, sleep, stopChildren, writeConf, writeTree, type TreeSpec } from '../torture/lib.js';
export { escapeManifestPath, forgetKeys, makeSigningKey, writeManifests, type ManifestOptions, type SigningKey } from '../bench/manifest-writer.js';
import { repoSection, ROOT, sleep } from '../torture/lib.js';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  content?: string;
  target?: string;
  mode: number;
}

/** Read a tree back: relative path -> type, content or link target, mode. */
export async function readTree(root: string): Promise<Record<string, TreeEntry>> {
  const out: Record<string, TreeEntry> = {};
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(p);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        out[r] = { type: 'dir', mode };
        await walk(p, r);
      } else if (st.isSymbolicLink()) out[r] = { type: 'symlink', target: await fs.readlink(p), mode };
      else if (st.isFile()) out[r] = { type: 'file', content: await fs.readFile(p, 'utf8'), mode };
      else out[r] = { type: 'other', mode };
    }
  };
  await walk(root, '');
  return out;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this uid/gid through setpriv (as root). */
  asUser?: { uid: number; gid: number };
}

/** Spawn the CLI; the child is returned so tests can signal it. */
export function startCli(args: string[], opts: RunOptions = {}): { child: ChildProcess; done: Promise<RunResult> } {
  // One way of running the CLI for the tests and the torture suite.
  return startTortureCli(args, { ...opts, cwd: opts.cwd ?? ROOT });
}

export function runCli(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return startCli(args, opts).done;
}

/** A simple RCU repos.conf for one repo named "test" under `dir`. */
export function rcuConf(dir: string, extra = '', type = 'local', uri = path.join(dir, 'upstream')): string {
  return repoSection('test', dir, extra, uri, type);
}

/** Every regular file under `root`, with its content, for version checks. */
export async function fileContents(root: string): Promise<Map<string, string>> {
  const tree = await readTree(root);
  const m = new Map<string, string>();
  for (const [k, v] of Object.entries(tree)) if (v.type === 'file') m.set(k, v.content ?? '');
  return m;
}

/** A tree of `n` files spread over dirs, each saying `version`. */
export async function writeVersionedTree(root: string, n: number, version: string): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  const perDir = 50;
  for (let d = 0; d * perDir < n; d++) {
    const dir = path.join(root, `cat-${d}`);
    await fs.mkdir(dir, { recursive: true });
    const writes: Array<Promise<void>> = [];
    for (let i = d * perDir; i < Math.min(n, (d + 1) * perDir); i++) {
      writes.push(fs.writeFile(path.join(dir, `pkg-${i}.ebuild`), `version=${version}\nfile=${i}\n`));
    }
    await Promise.all(writes);
  }
  await fs.writeFile(path.join(root, 'VERSION'), `${version}\n`);
}

/** Check that `root` holds one whole version of writeVersionedTree(n); return it. */
export async function wholeVersion(root: string, n: number): Promise<string> {
  const files = await fileContents(root);
  const version = (files.get('VERSION') ?? '').trim();
  if (!version) throw new Error(`no VERSION in ${root}`);
  let count = 0;
  for (const [k, v] of files) {
    if (k === 'VERSION') continue;
    count++;
    const m = /^version=(.*)\n/.exec(v);
    if (!m || m[1] !== version) throw new Error(`${root}/${k} has ${m?.[1]}, tree says ${version}`);
  }
  if (count !== n) throw new Error(`${root} has ${count} files, expected ${n}`);
  return version;
}

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Wait until something accepts connections on 127.0.0.1:port. */
export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`);
}

/** Portage's shipped repos.conf (/usr/share/portage/config/repos.conf), whose [gentoo] the Gentoo handbook relies on. */
export const PORTAGE_SHIPPED_REPOS_CONF = `[DEFAULT]
main-repo = gentoo

[gentoo]
location = %(EPREFIX)s/var/db/repos/gentoo
sync-type = rsync
sync-uri = rsync://rsync.gentoo.org/gentoo-portage
auto-sync = yes
sync-rsync-verify-jobs = 1
sync-rsync-verify-metamanifest = yes
sync-rsync-verify-max-age = 3
sync-openpgp-key-path = %(EPREFIX)s/usr/share/openpgp-keys/gentoo-release.asc
sync-openpgp-keyserver = hkps://keys.gentoo.org
sync-openpgp-key-refresh-retry-count = 40
sync-openpgp-key-refresh-retry-overall-timeout = 1200
sync-openpgp-key-refresh-retry-delay-exp-base = 2
sync-openpgp-key-refresh-retry-delay-max = 60
sync-openpgp-key-refresh-retry-delay-mult = 4
sync-webrsync-verify-signature = yes
`;

export interface Proc {
  pid: number;
  ppid: number;
  state: string;
  comm: string;
  cmdline: string;
}

/** Every process below `pid`, from /proc (a test that a stopped step left none). */
export function descendants(pid: number): Proc[] {
  const all: Proc[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ');
      all.push({ pid: Number(name), ppid: Number(ppid), state: state as string, comm, cmdline });
    } catch {
      // Gone meanwhile.
    }
  }
  const below = (p: number): Proc[] => all.filter((x) => x.ppid === p).flatMap((x) => [x, ...below(x.pid)]);
  return below(pid);
}

/** Whether `pid` still runs (a zombie has ended: only its parent has not reaped it yet). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] !== 'Z';
  } catch {
    return false;
  }
}

export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}
