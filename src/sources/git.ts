/**
 * The `git` source. A bare mirror kept in the store's cache (outside
 * snapshots/) is fetched with sync-depth; a new tree is made only when the
 * fetched commit differs from the one the current tree was made from.
 *
 * Materialising: when the target is an exact clone of the previous commit's
 * tree (RCU staging), only the difference between the two commits is applied
 * (`git diff-tree`): changed blobs are written to new files and renamed into
 * place, removed paths deleted, modes and symlinks set as git says. Otherwise
 * (first sync, a mirror that lost the old commit, a plain location) the
 * commit is checked out with git's own checkout-index into an empty directory,
 * and that tree is synchronised into the target. Snapshots never contain .git.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { ConfigError, ReposnapError } from '../errors.js';
import type { SourceKind } from './kind.js';
import { keyFileFor, Keyring, unverified, type KeySource } from '../trust/openpgp.js';
import { runProcess } from '../util/process.js';
import { trackChild } from '../util/children.js';
import { failpoint } from '../util/failpoint.js';
import { lstatOrUndefined, removeTree } from '../util/fs.js';
import { isAlive, tempNameBytes, temporaryWriter } from '../util/temp-name.js';
import { syncTree } from '../tree/mirror.js';
import { emptyChanges, unchangedIf, type PrecheckResult, type ChangeStats, type FillContext, type PrecheckContext, type SourceResult, type SyncSource, type ToolOutputListener } from './source.js';

export interface GitConfig {
  type: 'git';
  /** sync-git-verify-commit-signature: the key file every fetched commit must be signed by. */
  verify?: KeySource;
  /** sync-git-branch: the branch to follow (default: the remote's HEAD). */
  branch?: string;
  /** sync-depth: history depth to fetch; 0 = all of it. */
  depth: number;
}

export const gitKind: SourceKind<GitConfig> = {
  type: 'git',
  keys: ['sync-git-branch', 'sync-depth', 'sync-git-verify-commit-signature'],
  parse(r) {
    const branch = r.get('sync-git-branch')?.trim() || undefined;
    if (branch !== undefined && (!/^[^\s~^:?*[\\]+$/.test(branch) || branch.startsWith('-') || branch.includes('..'))) {
      throw new ConfigError(r.at('sync-git-branch'), `not a valid branch name: "${branch}"`);
    }
    const verify = r.bool('sync-git-verify-commit-signature', false) ? keyFileFor(r, 'sync-git-verify-commit-signature') : undefined;
    return { type: 'git', depth: r.count('sync-depth', 1), ...(branch !== undefined ? { branch } : {}), ...(verify ? { verify } : {}) };
  },
  create: (uri, c) => new GitSource(uri, { depth: c.depth, ...(c.branch !== undefined ? { branch: c.branch } : {}), ...(c.verify ? { verify: c.verify } : {}) }),
};

export interface GitSourceOptions {
  /** Every fetched commit must carry a good signature by a key of this file. */
  verify?: KeySource;
  branch?: string;
  /** History depth to fetch; 0 = full history. */
  depth: number;
}

interface RunResult {
  stdout: Buffer;
  stderr: string;
}

const GIT_ENV = {
  // Never ask for a password or a host key: fail instead.
  GIT_TERMINAL_PROMPT: '0',
  GIT_SSH_COMMAND: process.env.GIT_SSH_COMMAND ?? 'ssh -o BatchMode=yes',
  LC_ALL: 'C',
};

export class GitSource implements SyncSource {
  readonly type = 'git' as const;
  constructor(
    readonly uri: string,
    private readonly opts: GitSourceOptions,
  ) {}

  /** Fetch now; unchanged when the fetched commit is the one the current tree came from. */
  async precheck(ctx: PrecheckContext): Promise<PrecheckResult> {
    if (ctx.previous?.revision === undefined) return unchangedIf(false);
    return unchangedIf((await this.fetch(ctx.repo, path.join(ctx.cacheDir, 'git'), ctx.lockFds, ctx.onToolOutput)) === ctx.previous.revision);
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    if (!ctx.cacheDir || !ctx.scratchDir) throw new ReposnapError('EINTERNAL', 'git source needs a cache and a scratch directory');
    const mirror = path.join(ctx.cacheDir, 'git');
    const commit = await this.fetch(ctx.repo, mirror, ctx.lockFds ?? [], ctx.onToolOutput);
    const prev = ctx.previous?.revision;
    const exact = ctx.previous?.exact === true;
    const changes = emptyChanges();
    if (prev === commit && exact) {
      return { changed: false, changes, tree: await treeStats(mirror, commit), revision: commit };
    }
    // Before anything of it is written: a commit that fails is never applied.
    if (this.opts.verify) await verifyCommit(ctx.repo, mirror, commit, this.opts.verify);

    // The difference from the previous commit applies to a tree that is that
    // commit's (exact), or that commit's plus part of this very difference
    // (an interrupted fill heading for the same commit: applying it again is
    // idempotent). A tree holding anything else gets a full checkout.
    const resumingSame = !exact && ctx.previous?.toward === commit;
    const canDiff = prev !== undefined && (exact || resumingSame) && (await hasTree(mirror, prev));
    await ctx.beginWriting(commit);
    if (canDiff) {
      await applyDiff(ctx.repo, mirror, prev, commit, ctx.target, changes, resumingSame);
      return { changed: true, changes, tree: await treeStats(mirror, commit), revision: commit };
    }

    // Full checkout into an empty directory, then into the target.
    const checkout = path.join(ctx.scratchDir, 'checkout');
    await removeTree(checkout);
    await fs.mkdir(checkout, { recursive: true, mode: 0o755 });
    const index = path.join(ctx.scratchDir, 'index');
    await fs.rm(index, { force: true });
    const env = { GIT_INDEX_FILE: index };
    await git(ctx.repo, ['--git-dir', mirror, 'read-tree', commit], { env });
    await git(ctx.repo, ['--git-dir', mirror, '--work-tree', checkout, 'checkout-index', '-a', '-f'], { env });
    const result = await syncTree(checkout, ctx.target, {
      repo: ctx.repo,
      excludeTop: ctx.excludeTop,
      link: true,
      compare: 'content-any-mtime',
      midway: () => failpoint('fill-midway'),
      ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
    });
    await removeTree(checkout);
    await fs.rm(index, { force: true });
    return { ...result, changed: true, revision: commit };
  }

  /** Bring the mirror up to date; return the fetched commit id. `listener` hears what git fetch says. */
  private async fetch(repo: string, mirror: string, lockFds: number[], listener?: ToolOutputListener): Promise<string> {
    if (!(await lstatOrUndefined(path.join(mirror, 'HEAD')))) {
      await removeTree(mirror);
      await fs.mkdir(path.dirname(mirror), { recursive: true, mode: 0o755 });
      await git(repo, ['init', '--bare', '-q', mirror]);
      // Old commits must stay until the snapshot made from them is replaced:
      // the next diff needs them. reposnap never runs gc on the mirror itself.
      await git(repo, ['--git-dir', mirror, 'config', 'gc.auto', '0']);
    }
    await git(repo, ['--git-dir', mirror, 'config', 'remote.origin.url', this.uri]);
    const src = this.opts.branch ? `refs/heads/${this.opts.branch}` : 'HEAD';
    // Quiet unless someone listens: then git says what it fetched.
    const args = ['--git-dir', mirror, 'fetch', ...(listener ? [] : ['--quiet']), '--no-tags', '--no-write-fetch-head'];
    if (this.opts.depth > 0) args.push(`--depth=${this.opts.depth}`);
    else if (await lstatOrUndefined(path.join(mirror, 'shallow'))) args.push('--unshallow');
    args.push('origin', `+${src}:refs/reposnap/fetched`);
    try {
      await git(repo, args, { lockFds, timeoutMs: 30 * 60_000, ...(listener ? { onLine: (line: string) => listener('git', line) } : {}) });
    } catch (err) {
      throw this.explainFetchError(repo, err);
    }
    const out = await git(repo, ['--git-dir', mirror, 'rev-parse', '--verify', 'refs/reposnap/fetched^{commit}']);
    return out.stdout.toString().trim();
  }

  private explainFetchError(repo: string, err: unknown): unknown {
    if (!(err instanceof GitError)) return err;
    const text = err.stderr;
    let why: string;
    if (/couldn't find remote ref|no such ref|not our ref/i.test(text)) {
      why = this.opts.branch ? `branch "${this.opts.branch}" does not exist` : 'the remote has no HEAD';
    } else if (/authentication failed|permission denied|could not read (username|password)|terminal prompts disabled|access denied|403/i.test(text)) {
      why = `authentication failed (${err.firstFatal})`;
    } else if (/could not resolve host|connection refused|unable to connect|unable to access|connection timed out|no route to host|network is unreachable|does not appear to be a git repository|not found/i.test(text)) {
      why = `cannot reach the repository (${err.firstFatal})`;
    } else {
      why = err.firstFatal;
    }
    return new ReposnapError('ESOURCE', `repo ${repo}: git fetch from ${this.uri} failed: ${why}`, { cause: err });
  }
}

/**
 * Check `commit`'s signature (its gpgsig header over the rest of the commit
 * object, as git signs it) against the key file.
 */
async function verifyCommit(repo: string, mirror: string, commit: string, key: KeySource): Promise<void> {
  // The key file first: one that holds no usable key is the configuration's fault, whatever the commit.
  const ring = await Keyring.open(repo, key);
  try {
    const object = (await git(repo, ['--git-dir', mirror, 'cat-file', 'commit', commit])).stdout;
    const signed = splitSignature(object);
    const what = `commit ${commit.slice(0, 12)}`;
    if (!signed) throw unverified(repo, what, `it is not signed (sync-git-verify-commit-signature = yes, key file ${key.file})`);
    const verdict = await ring.verify(repo, signed.signature, signed.payload);
    if (!verdict.ok) throw unverified(repo, what, `${verdict.why} (key file ${key.file})`);
  } finally {
    await ring.close();
  }
}

/** A commit object's signature (gpgsig header) and the object without it, which is what was signed. */
function splitSignature(object: Buffer): { signature: Buffer; payload: Buffer } | undefined {
  const end = object.indexOf('\n\n');
  const header = (end < 0 ? object : object.subarray(0, end)).toString('latin1').split('\n');
  const kept: string[] = [];
  const sig: string[] = [];
  let inSig = false;
  for (const line of header) {
    if (line.startsWith('gpgsig ') || line.startsWith('gpgsig-sha256 ')) {
      inSig = true;
      sig.push(line.slice(line.indexOf(' ') + 1));
    } else if (inSig && line.startsWith(' ')) {
      sig.push(line.slice(1));
    } else {
      inSig = false;
      kept.push(line);
    }
  }
  if (sig.length === 0) return undefined;
  const rest = end < 0 ? Buffer.alloc(0) : object.subarray(end);
  return { signature: Buffer.from(`${sig.join('\n')}\n`, 'latin1'), payload: Buffer.concat([Buffer.from(kept.join('\n'), 'latin1'), rest]) };
}

class GitError extends Error {
  constructor(
    readonly args: string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`git ${args.join(' ')} failed (${code}): ${stderr.trim()}`);
  }
  /** The line git's own error is on. */
  get firstFatal(): string {
    const lines = this.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
    return (lines.find((l) => /^fatal:/.test(l)) ?? lines[lines.length - 1] ?? `exit ${this.code}`).replace(/^fatal:\s*/, '');
  }
}

async function git(repo: string, args: string[], opts: { env?: Record<string, string>; lockFds?: number[]; timeoutMs?: number; onLine?: (line: string) => void } = {}): Promise<RunResult> {
  const onLine = opts.onLine;
  const end = await runProcess('git', args, {
    ...(onLine ? { onLine: (line: string) => onLine(line) } : {}),
    env: { ...GIT_ENV, ...opts.env },
    ...(opts.lockFds ? { fds: opts.lockFds } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
    missing: { repo, tool: 'git' },
  });
  if (end.code !== 0) throw new GitError(args, end.code, end.stderr);
  return { stdout: end.stdout, stderr: end.stderr };
}

async function hasTree(mirror: string, rev: string): Promise<boolean> {
  try {
    await git('', ['--git-dir', mirror, 'cat-file', '-e', `${rev}^{tree}`]);
    return true;
  } catch {
    return false;
  }
}

/** Files and bytes in a commit's tree (one ls-tree, no checkout). */
async function treeStats(mirror: string, commit: string): Promise<{ files: number; bytes: number }> {
  const out = await git('', ['--git-dir', mirror, 'ls-tree', '-r', '-z', '-l', commit]);
  let files = 0;
  let bytes = 0;
  for (const rec of out.stdout.toString('latin1').split('\0')) {
    if (!rec) continue;
    files++;
    const m = /^\d+ \w+ [0-9a-f]+\s+(\d+|-)\t/.exec(rec);
    if (m && m[1] !== '-') bytes += Number(m[1]);
  }
  return { files, bytes };
}

interface DiffEntry {
  newMode: string;
  newSha: string;
  status: string;
  path: Buffer;
}

/** Parse `git diff-tree -r -z --raw` output. */
function parseRawDiff(buf: Buffer): DiffEntry[] {
  const entries: DiffEntry[] = [];
  let i = 0;
  while (i < buf.length) {
    const headEnd = buf.indexOf(0, i);
    if (headEnd < 0) break;
    const head = buf.subarray(i, headEnd).toString('latin1');
    const pathEnd = buf.indexOf(0, headEnd + 1);
    const p = buf.subarray(headEnd + 1, pathEnd < 0 ? buf.length : pathEnd);
    i = pathEnd < 0 ? buf.length : pathEnd + 1;
    const m = /^:(\d+) (\d+) ([0-9a-f]+) ([0-9a-f]+) ([A-Z])/.exec(head);
    if (!m) continue;
    entries.push({ newMode: m[2] as string, newSha: m[4] as string, status: m[5] as string, path: Buffer.from(p) });
  }
  return entries;
}

/**
 * Refuse paths git would never check out (absolute, `..`, `.git`). The path
 * comes back as a latin1 string: one character per byte, so that names that
 * are not UTF-8 survive (onDisk turns it back into the same bytes).
 */
function checkedPath(repo: string, p: Buffer): string {
  const s = p.toString('latin1');
  const parts = s.split('/');
  if (s.startsWith('/') || parts.some((x) => x === '..' || x === '' || x === '.' || x.toLowerCase() === '.git')) {
    throw new ReposnapError('EUNSAFE', `repo ${repo}: refusing path ${JSON.stringify(p.toString())} from git`);
  }
  return s;
}

/** `root`/`rel` as the bytes a filesystem call needs (rel is a latin1 string from checkedPath). */
function onDisk(root: string, rel: string): Buffer {
  return Buffer.concat([Buffer.from(root), Buffer.from('/'), Buffer.from(rel, 'latin1')]);
}

/**
 * Apply the difference between two commits to a tree that is the old one
 * (`again`: the old one plus part of this same difference, left by an
 * interrupted fill, whose dead temporaries are swept first).
 */
async function applyDiff(repo: string, mirror: string, from: string, to: string, target: string, changes: ChangeStats, again: boolean): Promise<void> {
  const diff = await git(repo, ['--git-dir', mirror, 'diff-tree', '-r', '-z', '--raw', '--no-renames', from, to]);
  const entries = parseRawDiff(diff.stdout);
  if (again) await sweepTemporaries(repo, mirror, to, target, entries);
  // Deletions first: a path that changes from file to directory (or back) is
  // a deletion and an addition.
  const dirsTouched = new Set<string>();
  for (const e of entries) {
    if (e.status !== 'D' && e.status !== 'T') continue;
    const rel = checkedPath(repo, e.path);
    await fs.rm(onDisk(target, rel), { recursive: true, force: true });
    if (e.status === 'D') changes.deleted++;
    dirsTouched.add(path.dirname(rel));
  }
  // Directories git no longer has a file in are gone from a checkout too.
  for (const d of [...dirsTouched].sort((a, b) => b.length - a.length)) {
    let dir = d;
    while (dir !== '.' && dir !== '') {
      try {
        await fs.rmdir(onDisk(target, dir));
      } catch {
        break; // not empty (or already gone)
      }
      dir = path.dirname(dir);
    }
  }
  const writes = entries.filter((e) => e.status !== 'D');
  if (writes.length === 0) return;
  const reader = new BlobReader(mirror);
  let midway = true;
  try {
    for (const e of writes) {
      const rel = checkedPath(repo, e.path);
      const dest = onDisk(target, rel);
      await makeParents(target, rel);
      if (e.newMode === '160000') {
        // A submodule: git checks out an empty directory.
        await fs.mkdir(dest, { recursive: true });
        continue;
      }
      const content = await reader.read(e.newSha);
      const tmp = tempNameBytes(onDisk(target, path.posix.dirname(rel)), Buffer.from(path.posix.basename(rel), 'latin1'));
      if (e.newMode === '120000') {
        await fs.symlink(content, tmp);
      } else {
        await fs.writeFile(tmp, content, { mode: e.newMode === '100755' ? 0o755 : 0o644, flag: 'wx' });
      }
      if (midway) {
        // Interrupted here, the tree holds a temporary of ours.
        midway = false;
        await failpoint('fill-midway');
      }
      const old = await lstatOrUndefined(dest);
      if (old?.isDirectory()) await fs.rm(dest, { recursive: true, force: true });
      await fs.rename(tmp, dest);
      changes.bytesTransferred += content.length;
      if (e.status === 'A' || e.status === 'T') changes.added++;
      else changes.updated++;
    }
  } finally {
    reader.close();
  }
}

/**
 * Remove what an interrupted applyDiff of the same difference left: our
 * temporaries whose writer is dead, in the directories the difference
 * writes to (the only places it makes them). A name that the commit itself
 * has is content, however it looks.
 */
async function sweepTemporaries(repo: string, mirror: string, commit: string, target: string, entries: DiffEntry[]): Promise<void> {
  const dirs = new Set<string>();
  for (const e of entries) if (e.status !== 'D') dirs.add(path.posix.dirname(checkedPath(repo, e.path)));
  for (const dir of dirs) {
    let names: Buffer[];
    try {
      names = await fs.readdir(onDisk(target, dir), { encoding: 'buffer' });
    } catch {
      continue; // not made yet
    }
    for (const name of names) {
      const writer = temporaryWriter(name);
      if (writer === undefined || isAlive(writer)) continue;
      const rel = dir === '.' ? name.toString('latin1') : `${dir}/${name.toString('latin1')}`;
      if (await inTree(mirror, commit, rel)) continue;
      await fs.rm(onDisk(target, rel), { recursive: true, force: true });
    }
  }
}

async function inTree(mirror: string, commit: string, rel: string): Promise<boolean> {
  const out = await git('', ['--git-dir', mirror, 'ls-tree', '-z', '--name-only', commit, '--', Buffer.from(rel, 'latin1').toString()]);
  return out.stdout.length > 0;
}

/** Create the parent directories of `rel` under `root`, replacing files in the way. */
async function makeParents(root: string, rel: string): Promise<void> {
  const parts = rel.split('/').slice(0, -1);
  let cur = '';
  for (const part of parts) {
    cur = cur ? `${cur}/${part}` : part;
    const at = onDisk(root, cur);
    const st = await lstatOrUndefined(at);
    if (st?.isDirectory()) continue;
    if (st) await fs.rm(at, { force: true });
    await fs.mkdir(at, { mode: 0o755 });
  }
}

/** Blobs by id through one `git cat-file --batch` process. */
class BlobReader {
  private readonly child;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: Array<{ resolve: (b: Buffer) => void; reject: (e: Error) => void }> = [];
  private failed: Error | undefined;

  constructor(mirror: string) {
    this.child = spawn('git', ['--git-dir', mirror, 'cat-file', '--batch'], { stdio: ['pipe', 'pipe', 'ignore'], env: { ...process.env, ...GIT_ENV } });
    trackChild(this.child);
    (this.child.stdout as Readable).on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.drain();
    });
    this.child.on('close', () => this.fail(new Error('git cat-file exited')));
    this.child.on('error', (err) => this.fail(err));
  }

  read(sha: string): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      (this.child.stdin as Writable).write(`${sha}\n`);
    });
  }

  private drain(): void {
    for (;;) {
      const nl = this.buf.indexOf(10);
      if (nl < 0 || this.waiting.length === 0) return;
      const header = this.buf.subarray(0, nl).toString();
      const m = /^[0-9a-f]+ (\w+) (\d+)$/.exec(header);
      if (!m) {
        this.buf = this.buf.subarray(nl + 1);
        this.waiting.shift()?.reject(new Error(`git cat-file: ${header}`));
        continue;
      }
      const size = Number(m[2]);
      if (this.buf.length < nl + 1 + size + 1) return;
      const content = Buffer.from(this.buf.subarray(nl + 1, nl + 1 + size));
      this.buf = this.buf.subarray(nl + 1 + size + 1);
      this.waiting.shift()?.resolve(content);
    }
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }

  close(): void {
    (this.child.stdin as Writable).end();
  }
}
