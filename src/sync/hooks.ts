/**
 * Post-sync hooks, as Portage's repo.postsync.d: every executable in the
 * directory, in lexical order, with the repository name, sync-uri and
 * location as arguments. For an RCU repository they run holding a lease on
 * the new snapshot, whose canonical path is in REPOSNAP_SNAPSHOT, so a hook
 * reads one stable tree even if another sync commits meanwhile. Output goes
 * to stderr, or a line at a time to whoever listens (SyncOptions
 * .onCommandOutput); a failing hook is reported and makes the sync exit 1,
 * but the snapshot stays published.
 */
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { runProcess, userOutput } from '../util/process.js';

export interface HookResult {
  hook: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

export async function listHooks(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const hooks: string[] = [];
  for (const n of names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    if (n.startsWith('.') || n.endsWith('~')) continue;
    const p = path.join(dir, n);
    try {
      const st = await fs.stat(p);
      if (!st.isFile()) continue;
      await fs.access(p, fsc.X_OK);
      hooks.push(p);
    } catch {
      // not an executable file
    }
  }
  return hooks;
}

/** A line a hook printed (the bytes it wrote, without the newline), and on which of its streams. */
export type HookOutputListener = (hook: string, stream: 'stdout' | 'stderr', line: Buffer) => void;

export async function runHooks(dir: string, args: string[], env: Record<string, string>, onOutput?: HookOutputListener): Promise<HookResult[]> {
  const results: HookResult[] = [];
  for (const hook of await listHooks(dir)) {
    // Its output is for the user (on stderr, so that --json output stays
    // clean, or to the listener); a hook that cannot be started ends like
    // an unrunnable command.
    const output = userOutput(onOutput ? (stream, line) => onOutput(hook, stream, line) : undefined);
    const end = await runProcess(hook, args, { ...output, env }).catch(() => ({ code: 126, signal: null }));
    results.push({ hook, status: end.code, signal: end.signal });
  }
  return results;
}
