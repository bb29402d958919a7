/**
 * `reposnap exec REPO -- CMD [ARGS...]`: run CMD while holding a lease on the
 * current snapshot. CMD gets REPOSNAP_SNAPSHOT (the canonical path) and
 * REPOSNAP_SNAPSHOT_ID, and inherits the lease's descriptor as fd 3
 * (REPOSNAP_LEASE_FD), so the lease lasts as long as CMD runs even if
 * reposnap itself is killed. Signals are forwarded; the exit status is CMD's.
 */
import { spawn } from 'node:child_process';
import { errnoCode, ReposnapError } from '../errors.js';
import type { CommandContext } from './context.js';
import { exitLike, forwardSignals } from './signals.js';

export async function execCommand(ctx: CommandContext, name: string, args: string[]): Promise<number> {
  // `--` separates reposnap's arguments from the command's; commander passes it on.
  const argv = args[0] === '--' ? args.slice(1) : args;
  if (argv.length === 0) throw new ReposnapError('EUSAGE', 'exec needs a command: reposnap exec REPO -- CMD [ARGS...]');
  const repo = ctx.repos().get(name);
  const lease = await repo.lease();
  try {
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: ['inherit', 'inherit', 'inherit', lease.fd],
      env: {
        ...process.env,
        REPOSNAP_SNAPSHOT: lease.path,
        REPOSNAP_SNAPSHOT_ID: String(lease.id),
        REPOSNAP_LEASE_FD: '3',
      },
    });
    const stopForwarding = forwardSignals(child);
    const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    })
      .catch((err: unknown) => {
        const code = errnoCode(err);
        throw new ReposnapError('EUSAGE', `cannot run ${argv[0]}: ${code === 'ENOENT' ? 'command not found' : (code ?? String(err))}`, {
          // 127/126 as shells do for "not found" / "not executable".
          exitCode: code === 'ENOENT' ? 127 : 126,
        });
      })
      .finally(stopForwarding);
    await lease.release();
    return exitLike(result.code, result.signal);
  } finally {
    await lease.release();
  }
}
