/**
 * Whether a repository can be synced here, found without syncing it: the
 * tools its source and options need, the folders it writes (location,
 * store), the source folder of a local source, and the filesystem and
 * backend the store is on. `reposnap check` shows it; configuration errors
 * never get this far (loading the configuration reports them, exit 2).
 *
 * Nothing is written, except where the store exists: then the backend `auto`
 * would pick is probed as a sync probes it (a scratch file made and removed).
 */
import { constants as fsc } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { chooseBackend } from './backends/select.js';
import type { RepoConfig } from './config/repos.js';
import { isRoot } from './util/identity.js';
import { runProcess } from './util/process.js';

export interface RepoCheck {
  repo: string;
  /** Every problem, one line each; none when the repo can be synced. */
  problems: string[];
  /** The tools found, with what each is for. */
  tools: Array<{ tool: string; for: string; found: boolean }>;
  /** The store's filesystem and the backend a sync would use there (rcu; null where unknown yet). */
  store: { dir: string; filesystem: string | null; backend: string | null } | null;
}

/** The tools `config` needs, each with why. */
function toolsFor(config: RepoConfig): Array<{ tool: string; for: string }> {
  const need: Array<{ tool: string; for: string }> = [];
  const uri = config.syncUri ?? '';
  switch (config.syncType) {
    case 'rsync':
      need.push({ tool: 'rsync', for: 'sync-type = rsync' });
      // ssh://host/path and host:path go over ssh (RsyncSource.sourceArg).
      if (!uri.startsWith('rsync://') && /^[^/]+:/.test(uri)) need.push({ tool: 'ssh', for: 'an rsync URI over ssh' });
      break;
    case 'git':
      need.push({ tool: 'git', for: 'sync-type = git' });
      break;
    case 'tarball':
    case 'webrsync':
      if (/\.xz$/.test(uri)) need.push({ tool: 'xz', for: 'a .tar.xz snapshot' });
      if (/\.zst$/.test(uri)) need.push({ tool: 'zstd', for: 'a .tar.zst snapshot' });
      break;
    default:
      break;
  }
  // git's sync-git-verify-commit-signature and a tarball's signature both land in `verify`.
  const source = config.source as { verify?: unknown } | undefined;
  if (config.metamanifest !== undefined || source?.verify !== undefined) {
    need.push({ tool: 'gpg', for: 'OpenPGP verification' });
  }
  if (config.syncUser !== undefined && isRoot) need.push({ tool: 'setpriv', for: 'sync-user' });
  if (config.mode === 'rcu') {
    need.push({ tool: 'cp', for: 'cloning snapshots (GNU cp)' }, { tool: 'sync', for: 'sealing snapshots (sync -f)' });
  }
  return need;
}

async function found(tool: string): Promise<boolean> {
  const end = await runProcess('sh', ['-c', 'command -v "$1"', 'sh', tool]).catch(() => undefined);
  return end?.code === 0;
}

/** The nearest folder at or above `p` that exists. */
async function nearestExisting(p: string): Promise<string> {
  for (let dir = p; ; dir = path.dirname(dir)) {
    if (await fs.stat(dir).then((s) => s.isDirectory(), () => false)) return dir;
    if (dir === path.dirname(dir)) return dir;
  }
}

/** Whether reposnap can make or change `p`: it is writable, or the nearest folder above it is. */
async function writable(p: string): Promise<string | undefined> {
  const dir = await nearestExisting(p);
  try {
    await fs.access(dir, fsc.W_OK | fsc.X_OK);
    return undefined;
  } catch {
    return dir === p ? `${p} is not writable` : `${p} does not exist and ${dir} is not writable`;
  }
}

async function filesystemOf(dir: string): Promise<string | null> {
  const end = await runProcess('stat', ['-f', '-c', '%T', dir]).catch(() => undefined);
  return end?.code === 0 ? end.stdout.toString().trim() : null;
}

export async function checkRepo(config: RepoConfig): Promise<RepoCheck> {
  const problems: string[] = [];
  const tools = await Promise.all(toolsFor(config).map(async (t) => ({ ...t, found: await found(t.tool) })));
  for (const t of tools) if (!t.found) problems.push(`${t.tool} is not installed (needed for ${t.for})`);

  const locationProblem = await writable(path.dirname(config.location));
  if (locationProblem) problems.push(`location ${config.location}: ${locationProblem}`);
  if (config.syncType === 'local' && config.syncUri !== undefined) {
    try {
      await fs.access(config.syncUri, fsc.R_OK | fsc.X_OK);
      if (!(await fs.stat(config.syncUri)).isDirectory()) problems.push(`source ${config.syncUri} is not a directory`);
    } catch {
      problems.push(`source ${config.syncUri} does not exist or cannot be read`);
    }
  }
  if (config.hooksDir !== undefined) {
    await fs.access(config.hooksDir, fsc.R_OK | fsc.X_OK).catch(() => problems.push(`post-sync hooks ${config.hooksDir} cannot be read`));
  }

  let store: RepoCheck['store'] = null;
  if (config.mode === 'rcu' && config.storeDir !== undefined) {
    const dir = config.storeDir;
    const storeProblem = await writable(dir);
    if (storeProblem) problems.push(`store ${storeProblem}`);
    const exists = (await nearestExisting(dir)) === dir;
    let backend: string | null = null;
    if (exists && !storeProblem) {
      try {
        backend = (await chooseBackend(config.backend, dir, config.syncAllowHardlinks)).name;
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    store = { dir, filesystem: await filesystemOf(await nearestExisting(dir)), backend };
  }
  return { repo: config.name, problems, tools, store };
}
