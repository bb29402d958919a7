/**
 * Post-sync hooks, as Portage's repo.postsync.d: every executable in the
 * directory, in lexical order, with the repository name, sync-uri and
 * location as arguments. For an RCU repository they run holding a lease on
 * the new snapshot, whose canonical path is in REPOSNAP_SNAPSHOT, so a hook
 * reads one stable tree even if another sync commits meanwhile. Output goes
 * to stderr; a failing hook is reported and makes the sync exit 1, but the
 * snapshot stays published.
 */
import { spawn } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { trackChild } from '../util/children.js';

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

export async function runHooks(dir: string, args: string[], env: Record<string, string>): Promise<HookResult[]> {
  const results: HookResult[] = [];
  for (const hook of await listHooks(dir)) {
    const child = spawn(hook, args, { stdio: ['ignore', process.stderr, process.stderr], env: { ...process.env, ...env } });
    trackChild(child);
    const r = await new Promise<HookResult>((resolve) => {
      child.on('error', () => resolve({ hook, status: 126, signal: null }));
      child.on('close', (status, signal) => resolve({ hook, status, signal }));
    });
    results.push(r);
  }
  return results;
}
