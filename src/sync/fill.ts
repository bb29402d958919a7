/**
 * Running a source's fill step: in this process, or, when the repository
 * sets sync-user (and we are root) or sync-umask, in a worker process that
 * runs as that user with that umask (Portage's sync-user and sync-umask).
 *
 * For a worker running as another user, the directories it must write in are
 * handed over first: the target's directories (private to the update: a
 * staging clone's directories are never shared with a snapshot), the scratch
 * and cache directories. Files shared with snapshots keep their owner; the
 * source replaces them by renaming new files over them, which needs only the
 * directory.
 *
 * When the worker is done, everything is taken back before anything else
 * looks at the tree (verification, commit): every folder, and every file the
 * user made, goes to the store's owner, without set-id bits and never
 * writable by group or others. A file the user made is not chowned but
 * copied into a new inode, so that a descriptor the user still holds open
 * on it writes into nothing that will be published. Otherwise the sync user
 * could rewrite the published snapshot, and every older one, that root
 * reads. The user may still run processes then (one it left behind), so
 * each folder is closed to it (the owner's, mode 0700) before anything in
 * it is looked at, and gets its mode back only when everything below it is
 * done: the user can then neither swap an entry for one of its own nor
 * open a copy while it is made.
 */
import { spawn } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { RepoConfig } from '../config/repos.js';
import { ConfigError, errnoCode, ReposnapError, type ErrorCode } from '../errors.js';
import type { FillContext, SourceResult, SyncSource } from '../sources/source.js';
import { trackChild } from '../util/children.js';
import { escapeControls } from '../util/controls.js';
import { runProcess } from '../util/process.js';
import { DIR_CONCURRENCY, FS_CONCURRENCY, Limiter, mapLimit, settleAll } from '../util/limit.js';
import { tempNameBytes } from '../util/temp-name.js';
import { bjoin, showPath } from '../tree/bytes.js';
import type { WorkerAnswer, WorkerMessage, WorkerRequest } from './fill-worker.js';
import { isRoot } from '../util/identity.js';

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fill-worker.js');

export interface Account {
  uid: number;
  gid: number;
  name: string;
}

/**
 * Resolve sync-user's user[:group] to numbers. An unknown account is a
 * configuration error, reported at the line that names it.
 */
export async function resolveAccount(config: RepoConfig, spec: { user: string; group?: string }): Promise<Account> {
  const pos = config.keyPositions['sync-user'];
  const run = async (cmd: string, args: string[], what: string): Promise<string> => {
    const end = await runProcess(cmd, args).catch(() => undefined);
    if (end?.code === 0) return end.stdout.toString().trim();
    if (pos) throw new ConfigError({ ...pos, section: config.name, key: 'sync-user' }, `no such ${what}`);
    throw new ReposnapError('ECONFIG', `repo ${config.name}: sync-user: no such ${what}`);
  };
  const uid = Number(await run('id', ['-u', spec.user], `user "${spec.user}"`));
  const gid = spec.group
    ? Number((await run('getent', ['group', spec.group], `group "${spec.group}"`)).split(':')[2])
    : Number(await run('id', ['-g', spec.user], `user "${spec.user}"`));
  return { uid, gid, name: spec.user };
}

/** Fail with a configuration error now if sync-user names no account (checked before anything is touched). */
export async function checkSyncUser(config: RepoConfig): Promise<void> {
  if (config.syncUser !== undefined && isRoot) await resolveAccount(config, config.syncUser);
}

export function needsWorker(config: RepoConfig): boolean {
  return (config.syncUser !== undefined && isRoot) || config.umask !== undefined;
}

export async function fill(config: RepoConfig, source: SyncSource, ctx: FillContext): Promise<SourceResult> {
  if (!needsWorker(config)) return source.fill(ctx);
  const account = config.syncUser !== undefined && isRoot ? await resolveAccount(config, config.syncUser) : undefined;
  if (account) {
    // Handing the folders over changes the tree (their owners): that is a
    // write, announced first. It costs git its heading (a resume checks out
    // in full), never correctness.
    await ctx.beginWriting();
    await handOver(ctx, account);
  }

  const req: WorkerRequest = {
    config,
    ctx: {
      repo: ctx.repo,
      target: ctx.target,
      excludeTop: ctx.excludeTop,
      sharesInodes: ctx.sharesInodes,
      ...(ctx.cacheDir ? { cacheDir: ctx.cacheDir } : {}),
      ...(ctx.scratchDir ? { scratchDir: ctx.scratchDir } : {}),
      ...(ctx.previous ? { previous: ctx.previous } : {}),
    },
    lockFdCount: ctx.lockFds?.length ?? 0,
    listen: { progress: ctx.onProgress !== undefined, output: ctx.onToolOutput !== undefined },
  };
  // setpriv (user, groups, parent-death signal) -> sh (umask) -> node worker.
  let argv = [process.execPath, WORKER];
  if (config.umask !== undefined) argv = ['/bin/sh', '-c', `umask ${config.umask.toString(8).padStart(3, '0')} && exec "$@"`, 'sh', ...argv];
  const priv = ['--pdeathsig', 'TERM'];
  if (account) priv.push(`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups');
  argv = ['setpriv', ...priv, '--', ...argv];

  const child = spawn(argv[0] as string, argv.slice(1), {
    // Its own stderr (setpriv's, the shell's, Node's) is read like a
    // tool's: handed over a line at a time when the caller listens, and
    // its last line said when the worker fails, not printed as it is.
    stdio: ['pipe', 'pipe', 'pipe', ...(ctx.lockFds ?? [])],
    cwd: '/',
    env: account ? { ...process.env, HOME: await homeOf(account) } : process.env,
  });
  trackChild(child);
  const answer = (a: WorkerAnswer): void => {
    child.stdin?.write(`${JSON.stringify(a)}\n`);
  };
  child.stdin?.on('error', () => undefined); // a worker that died is reported below
  child.stdin?.write(`${JSON.stringify(req)}\n`);
  let lastComplaint = '';
  const complaints = (async () => {
    for await (const line of createInterface({ input: child.stderr as Readable })) {
      if (line.trim() === '') continue;
      lastComplaint = line.length > 500 ? `${line.slice(0, 500)}...` : line;
      ctx.onToolOutput?.('sync worker', line);
    }
  })();
  let reply: Extract<WorkerMessage, { type: 'result' | 'error' }> | undefined;
  const talk = (async () => {
    for await (const line of createInterface({ input: child.stdout as Readable })) {
      let m: WorkerMessage;
      try {
        m = JSON.parse(line) as WorkerMessage;
      } catch {
        continue;
      }
      if (m.type === 'progress') ctx.onProgress?.(m.progress);
      else if (m.type === 'output') ctx.onToolOutput?.(m.tool, m.line);
      else if (m.type === 'writing') {
        try {
          await ctx.beginWriting(m.revision);
          answer({ ok: true });
        } catch (err) {
          answer({ ok: false, message: err instanceof Error ? err.message : String(err) });
        }
      } else {
        reply = m;
      }
    }
  })();
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  }).catch((err: unknown) => {
    throw new ReposnapError('ESOURCE', `repo ${config.name}: cannot start the sync worker: ${errnoCode(err) ?? String(err)}`);
  });
  await talk;
  await complaints;
  if (reply === undefined) {
    const why = lastComplaint === '' ? '' : `: ${escapeControls(lastComplaint)}`;
    throw new ReposnapError('ESOURCE', `repo ${config.name}: the sync worker${account ? ` (running as ${account.name})` : ''} failed (exit ${code})${why}`);
  }
  if (reply.type === 'error') throw new ReposnapError(reply.code as ErrorCode, reply.message);
  if (account) await takeBack(ctx.target, account);
  return reply.result as SourceResult;
}

/** Give the tree at `target` back to the owner of the folder it lives in (the store's), as described above. */
export async function takeBack(target: string, account: Account): Promise<void> {
  const owner = await fs.stat(path.dirname(target));
  const limiter = new Limiter(FS_CONCURRENCY);
  const walk = async (dir: Buffer): Promise<void> => {
    // Closed first (its parent already is, so this is the folder the walk
    // found). Besides the swaps, this is what keeps the copies below from
    // the user: fs.copyFile gives a copy its source's owner (Node 22 and
    // later do), the user's, until the chown that follows it.
    const st = await fs.lstat(dir);
    if (!st.isDirectory()) throw new ReposnapError('EUNSAFE', `the sync user replaced the folder ${showPath(dir)}; refusing it`);
    await fs.lchown(dir, owner.uid, owner.gid);
    await fs.chmod(dir, 0o700);
    const entries = await fs.readdir(dir, { withFileTypes: true, encoding: 'buffer' });
    const subdirs: Buffer[] = [];
    await settleAll(
      entries.map((e) =>
        limiter.run(async () => {
          const p = bjoin(dir, e.name);
          const st = await fs.lstat(p);
          if (st.isDirectory()) {
            subdirs.push(p);
            return;
          }
          if (st.uid !== account.uid) return; // not the user's: a file shared with older snapshots
          if (st.isSymbolicLink()) {
            await fs.lchown(p, owner.uid, owner.gid);
            return;
          }
          if (!st.isFile()) throw new ReposnapError('EUNSAFE', `the sync user left a special file ${showPath(p)}; refusing it`);
          const tmp = tempNameBytes(dir, e.name);
          try {
            await fs.copyFile(p, tmp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
            await fs.chown(tmp, owner.uid, owner.gid);
            await fs.chmod(tmp, st.mode & TAKEN_BACK_BITS);
            await fs.utimes(tmp, st.atime, st.mtime);
            await fs.rename(tmp, p);
          } catch (err) {
            await fs.rm(tmp, { force: true }).catch(() => undefined);
            throw err;
          }
        }),
      ),
    );
    await mapLimit(subdirs, DIR_CONCURRENCY, walk);
    await fs.chmod(dir, st.mode & TAKEN_BACK_BITS);
  };
  await walk(Buffer.from(target));
}

/** What a taken-back entry may keep of its mode: no set-id bits, nothing writable by group or others. */
const TAKEN_BACK_BITS = 0o1755;

async function homeOf(account: Account): Promise<string> {
  try {
    const end = await runProcess('getent', ['passwd', String(account.uid)]);
    return (end.code === 0 ? end.stdout.toString().split(':')[5] : undefined) ?? '/';
  } catch {
    return '/';
  }
}

/** Give the worker's user the directories it writes in. */
async function handOver(ctx: FillContext, account: Account): Promise<void> {
  const chownDirs = async (dir: string): Promise<void> => {
    await fs.lchown(dir, account.uid, account.gid);
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await chownDirs(path.join(dir, e.name));
    }
  };
  await chownDirs(ctx.target);
  for (const d of [ctx.cacheDir, ctx.scratchDir]) {
    if (!d) continue;
    await fs.mkdir(d, { recursive: true, mode: 0o755 });
    await chownTree(d, account);
  }
}

async function chownTree(dir: string, account: Account): Promise<void> {
  const st = await fs.lstat(dir);
  if (st.uid === account.uid && st.gid === account.gid) return; // handed over before
  await fs.lchown(dir, account.uid, account.gid);
  for (const e of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, account);
    else await fs.lchown(p, account.uid, account.gid);
  }
}
