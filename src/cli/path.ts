/** `reposnap path REPO`: the canonical path a reader should use. */
import type { CommandContext } from './context.js';

export async function pathCommand(ctx: CommandContext, name: string, opts: { json: boolean }): Promise<number> {
  const repo = ctx.repos().get(name);
  const p = await repo.currentPath();
  if (opts.json) ctx.out.results({ repo: name, path: p });
  else ctx.out.print(p);
  return 0;
}
