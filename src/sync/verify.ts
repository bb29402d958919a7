/**
 * sync-verify-command: a shell command run inside the finished update before
 * it is committed. A non-zero exit means nothing is committed; the update is
 * kept for inspection (Portage likewise keeps an update that failed
 * verification). The command's output goes to stderr, so that --json output
 * stays clean, or a line at a time to `onOutput`.
 */
import { ReposnapError } from '../errors.js';
import { runProcess, userOutput } from '../util/process.js';

export async function runVerifyCommand(repo: string, command: string, dir: string, onOutput?: (stream: 'stdout' | 'stderr', line: Buffer) => void): Promise<void> {
  const { code, signal } = await runProcess('/bin/sh', ['-c', command], {
    cwd: dir,
    ...userOutput(onOutput),
    env: { REPOSNAP_REPO: repo, REPOSNAP_UPDATE: dir },
  });
  if (code === 0) return;
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  throw new ReposnapError('EVERIFY', `repo ${repo}: sync-verify-command failed (${how}); nothing committed, the update is kept in ${dir} for inspection`);
}
