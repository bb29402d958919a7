/** `reposnap gc [REPO...] [--dry-run]`: collect old snapshots, saying why each stays or goes. */
import type { GcDecision } from '../store/gc.js';
import type { CommandContext } from './context.js';

export async function gcCommand(ctx: CommandContext, names: string[], opts: { dryRun: boolean; json: boolean }): Promise<number> {
  const repos = ctx.repos().select(names).filter((r) => names.length > 0 || r.config.mode === 'rcu');
  const results = [];
  for (const repo of repos) {
    if (!(await repo.synced())) {
      // Not an error: a repo configured today and synced by tonight's timer.
      ctx.out.info(`${repo.name}: not synced yet, nothing to collect`);
      results.push({ repo: repo.name, dryRun: opts.dryRun, synced: false, removed: [], removedStaging: [], decisions: [] });
      continue;
    }
    const r = await repo.gc({ dryRun: opts.dryRun });
    results.push({ repo: repo.name, dryRun: opts.dryRun, removed: r.removed, removedStaging: r.removedStaging, removedLayers: r.removedLayers ?? [], decisions: r.decisions });
    if (!opts.json) {
      ctx.out.print(`${repo.name}:`);
      for (const d of r.decisions) ctx.out.print(`  ${String(d.id).padStart(5)}  ${describeDecision(d, opts.dryRun)}`);
      if (r.decisions.length === 0) ctx.out.print('  no snapshots');
      for (const tx of r.removedStaging) ctx.out.print(`  staging ${tx}: abandoned, deleted`);
      if (r.removedLayers?.length) ctx.out.print(`  layers ${r.removedLayers.join(', ')}: no snapshot uses them, deleted`);
    }
  }
  if (opts.json) ctx.out.results(results);
  return 0;
}

export function describeDecision(d: GcDecision, dryRun: boolean): string {
  if (!d.keep) return dryRun ? 'would be deleted' : 'deleted';
  const why = d.reasons.map((r) => {
    switch (r) {
      case 'latest':
        return 'latest';
      case 'spare':
        return 'spare';
      case 'ttl':
        return `younger than the TTL (committed ${d.committedAt ?? '?'})`;
      case 'leased':
        return d.leasedBy.length > 0 ? `leased by pid ${d.leasedBy.join(', ')}` : 'leased';
      case 'pinned':
        return 'pinned';
    }
  });
  return `kept: ${why.join('; ')}`;
}
