/** `reposnap rollback REPO [ID]`, `reposnap pin|unpin REPO ID`: choosing which snapshot readers get and which stay. */
import type { CommandContext } from './context.js';
import { snapshotIdArg } from './snapshots.js';

export async function rollbackCommand(ctx: CommandContext, name: string, id: string | undefined, opts: { wait: boolean; json: boolean }): Promise<number> {
  const r = await ctx.repos().get(name).rollback({ ...(id !== undefined ? { to: snapshotIdArg(id) } : {}), wait: opts.wait });
  if (opts.json) ctx.out.results({ repo: name, ...r });
  else ctx.out.info(`${name}: rolled back from snapshot ${r.from} to ${r.to}; the next sync brings upstream back (pin ${r.from} to keep it)`);
  return 0;
}

export async function pinCommand(ctx: CommandContext, name: string, id: string, pinned: boolean, opts: { json: boolean }): Promise<number> {
  const n = snapshotIdArg(id);
  const repo = ctx.repos().get(name);
  const changed = pinned ? await repo.pin(n) : await repo.unpin(n);
  if (opts.json) ctx.out.results({ repo: name, id: n, pinned, changed });
  else ctx.out.info(`${name}: snapshot ${n} ${pinned ? (changed ? 'pinned: collection keeps it' : 'was pinned already') : changed ? 'unpinned: collection may take it' : 'was not pinned'}`);
  return 0;
}
