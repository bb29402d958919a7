/** `reposnap diff REPO [A] [B]`: what changed between two kept snapshots. */
import { ReposnapError } from '../errors.js';
import type { CommandContext } from './context.js';
import { changeJson, changeLine, snapshotIdArg } from './snapshots.js';

export async function diffCommand(ctx: CommandContext, name: string, ids: string[], opts: { json: boolean }): Promise<number> {
  if (ids.length > 2) throw new ReposnapError('EUSAGE', 'diff compares two snapshots: give at most two ids');
  const [from, to] = ids.map(snapshotIdArg);
  // One id: compare it with the current snapshot.
  const diff = await ctx.repos().get(name).diff(from, to);
  if (opts.json) {
    ctx.out.results({
      repo: name,
      from: diff.from,
      to: diff.to,
      changes: diff.changes.map(changeJson),
    });
    return 0;
  }
  const lines = diff.changes.map(changeLine);
  ctx.out.print(lines.length > 0 ? lines.join('\n') : `(snapshots ${diff.from} and ${diff.to} hold the same tree)`);
  return 0;
}
