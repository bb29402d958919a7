/**
 * `reposnap list`: one line per repository: mode, backend, the current
 * snapshot and when it was committed, and when a sync last ended well
 * (updating the tree, or finding upstream unchanged).
 */
import type { RepoStatus } from '../repository.js';
import type { CommandContext } from './context.js';
import { formatAge } from './output.js';

export async function listCommand(ctx: CommandContext, opts: { json: boolean }): Promise<number> {
  const all = ctx.repos();
  const statuses: RepoStatus[] = [];
  for (const r of all.select([])) statuses.push(await r.status());
  const rows = statuses.map((s) => ({
    repo: s.name,
    mode: s.mode,
    backend: s.backend,
    snapshot: s.current?.id ?? null,
    committedAt: s.current?.committedAt ?? null,
    lastCheck: s.lastCheck,
    rolledBack: s.rolledBack !== null,
  }));
  if (opts.json) {
    ctx.out.results({ repos: rows, unmanaged: all.unmanaged.map((u) => ({ repo: u.name, why: u.why })) });
    return 0;
  }
  const table = rows.map((r) => [
    r.repo,
    r.mode,
    r.backend ?? '-',
    r.snapshot !== null ? `snapshot ${r.snapshot}${r.rolledBack ? ' (rolled back)' : ''}` : r.mode === 'rcu' ? 'not synced' : '-',
    r.committedAt ? `committed ${formatAge(r.committedAt)}` : '',
    r.lastCheck ? `last sync ${formatAge(r.lastCheck.at)}, ${r.lastCheck.outcome === 'updated' ? 'updated' : 'up to date'}` : 'never synced by reposnap',
  ]);
  for (const u of all.unmanaged) table.push([u.name, 'portage', '-', '-', '', `not managed by reposnap (${u.why})`]);
  if (table.length === 0) {
    ctx.out.print('no repositories configured');
    return 0;
  }
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length))) ?? [];
  ctx.out.print(table.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n'));
  return 0;
}
