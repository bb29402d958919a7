/**
 * `reposnap check [REPO...]`: validate the configuration (a configuration
 * error is exit 2, as for every command) and the environment each repo
 * needs (exit 1 on any problem), without syncing.
 */
import type { CommandContext } from './context.js';

export async function checkCommand(ctx: CommandContext, names: string[], opts: { json: boolean }): Promise<number> {
  const repos = ctx.repos();
  const selected = repos.select(names);
  const results = await Promise.all(selected.map((r) => r.check()));
  if (opts.json) {
    ctx.out.results({ repos: results, unmanaged: names.length === 0 ? repos.unmanaged : [] });
  } else {
    const lines: string[] = [];
    for (const c of results) {
      lines.push(`${c.repo}  ${c.problems.length === 0 ? 'ok' : `${c.problems.length} problem${c.problems.length === 1 ? '' : 's'}`}`);
      for (const p of c.problems) lines.push(`  - ${p}`);
      const tools = c.tools.filter((t) => t.found).map((t) => t.tool);
      if (tools.length > 0) lines.push(`  tools      ${[...new Set(tools)].join(', ')}`);
      if (c.store) {
        lines.push(`  store      ${c.store.dir}${c.store.filesystem ? ` on ${c.store.filesystem}` : ''}, backend ${c.store.backend ?? 'chosen at the first sync'}`);
      }
    }
    if (names.length === 0) for (const u of repos.unmanaged) lines.push(`${u.name}  not managed by reposnap (${u.why})`);
    ctx.out.print(lines.join('\n') || 'no repositories configured');
  }
  return results.some((c) => c.problems.length > 0) ? 1 : 0;
}
