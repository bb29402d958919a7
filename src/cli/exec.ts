/**
 * `reposnap exec REPO -- CMD [ARGS...]`: run CMD while holding a lease on the
 * current snapshot. CMD gets REPOSNAP_SNAPSHOT (the canonical path) and
 * REPOSNAP_SNAPSHOT_ID, and inherits the lease's descriptor as fd 3
 * (REPOSNAP_LEASE_FD), so the lease lasts as long as CMD runs even if
 * reposnap itself is killed. Signals are forwarded; the exit status is CMD's.
 */
import { ReposnapError } from '../errors.js';
import type { CommandContext } from './context.js';
import { exitLike, runForwarding } from './signals.js';

export async function execCommand(ctx: CommandContext, name: string, args: string[]): Promise<number> {
  // `--` separates reposnap's arguments from the command's; commander passes it on.
  const argv = args[0] === '--' ? args.slice(1) : args;
  if (argv.length === 0) throw new ReposnapError('EUSAGE', 'exec needs a command: reposnap exec REPO -- CMD [ARGS...]');
  const repo = ctx.repos().get(name);
  const lease = await repo.lease();
  let end;
  try {
    end = await runForwarding(argv, {
      stdio: ['inherit', 'inherit', 'inherit', lease.fd],
      env: {
        ...process.env,
        REPOSNAP_SNAPSHOT: lease.path,
        REPOSNAP_SNAPSHOT_ID: String(lease.id),
        REPOSNAP_LEASE_FD: '3',
      },
    });
  } finally {
    // Before exiting like the command (which may mean dying by its signal).
    await lease.release();
  }
  return exitLike(end.code, end.signal);
}
