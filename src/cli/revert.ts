/** `reposnap revert REPO [--force]`: back to a plain directory, store removed. */
import type { CommandContext } from './context.js';

export async function revertCommand(ctx: CommandContext, name: string, opts: { force: boolean; wait: boolean; json: boolean }): Promise<number> {
  const repo = ctx.repos().get(name);
  const r = await repo.revert({ force: opts.force, wait: opts.wait });
  if (opts.json) ctx.out.results({ repo: name, reverted: r.reverted, revertedFrom: r.id, location: repo.config.location });
  else if (!r.reverted) ctx.out.info(`${name}: nothing to revert (no store at ${repo.config.storeDir})`);
  else {
    ctx.out.info(`${name}: ${repo.config.location} is a plain directory again${r.id !== null ? ` (content of snapshot ${r.id})` : ''}; store ${repo.config.storeDir} removed`);
    ctx.out.info(`${name}: set sync-rcu = no in repos.conf, or the next sync migrates it back into a store`);
  }
  return 0;
}
