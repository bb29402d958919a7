/**
 * sync-verify-command: a shell command run inside the finished update before
 * it is committed. A non-zero exit means nothing is committed; the update is
 * kept for inspection (Portage likewise keeps an update that failed
 * verification). The command's output goes to stderr, so that --json output
 * stays clean.
 */
import { spawn } from 'node:child_process';
import { ReposnapError } from '../errors.js';
import { trackChild } from '../util/children.js';

export async function runVerifyCommand(repo: string, command: string, dir: string): Promise<void> {
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: dir,
    stdio: ['ignore', process.stderr, process.stderr],
    env: { ...process.env, REPOSNAP_REPO: repo, REPOSNAP_UPDATE: dir },
  });
  trackChild(child);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  if (code === 0) return;
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  throw new ReposnapError('EVERIFY', `repo ${repo}: sync-verify-command failed (${how}); nothing committed, the update is kept in ${dir} for inspection`);
}
