/** `reposnap status [REPO...]`: what each repository looks like now. */
import type { RepoStatus } from '../repository.js';
import type { CommandContext } from './context.js';
import { formatAge, formatBytes } from './output.js';

export async function statusCommand(ctx: CommandContext, names: string[], opts: { json: boolean }): Promise<number> {
  const all = ctx.repos();
  const repos = all.select(names);
  const statuses: RepoStatus[] = [];
  for (const r of repos) statuses.push(await r.status());
  // Repos Portage syncs are listed with why, when no names narrow the list.
  const unmanaged = names.length === 0 ? all.unmanaged : [];
  if (opts.json) {
    ctx.out.results({ repos: statuses, unmanaged });
    return 0;
  }
  if (statuses.length === 0 && unmanaged.length === 0) {
    ctx.out.print('no repositories configured');
    return 0;
  }
  const lines = statuses.map(renderStatus);
  for (const u of unmanaged) lines.push(`${u.name}  (not managed by reposnap)\n  location   ${u.location ?? '(none)'}\n  why        ${u.why}`);
  ctx.out.print(lines.join('\n'));
  return 0;
}

export function renderStatus(s: RepoStatus): string {
  const lines: string[] = [];
  lines.push(`${s.name}  (${s.mode}${s.backend ? `, ${s.backend}` : ''})`);
  lines.push(`  location   ${s.location}${s.current ? ` -> ${s.current.path}` : ' (not synced yet)'}`);
  if (s.storeDir) lines.push(`  store      ${s.storeDir}`);
  lines.push(`  source     ${s.syncType ? `${s.syncType} ${s.syncUri ?? ''}` : 'none (not synced)'}${s.autoSync ? '' : '  [auto-sync = no]'}`);
  if (s.generation.value !== null) {
    lines.push(`  generation ${s.generation.kind === 'snapshot' ? `snapshot ${s.generation.value}` : `stamp ${s.generation.value}${s.generation.inProgress ? ' (modification in progress)' : ''}`}`);
  }
  if (s.busy) lines.push(`  busy       ${s.busy.pid === null ? 'locked by another process' : `pid ${s.busy.pid} (${s.busy.operation ?? 'update'} since ${s.busy.since ?? '?'})`}`);
  if (s.mode === 'rcu') {
    if (s.current?.id != null) {
      const rev = s.snapshots.find((x) => x.id === s.current?.id)?.revision;
      lines.push(`  current    snapshot ${s.current.id}, committed ${s.current.committedAt ?? '?'} (${formatAge(s.current.committedAt)})${rev ? `, revision ${rev}` : ''}`);
    }
    if (s.lastCheck) lines.push(`  last sync  ${s.lastCheck.at} (${formatAge(s.lastCheck.at)}), ${s.lastCheck.outcome === 'updated' ? 'updated' : 'up to date'}`);
    if (s.rolledBack) lines.push(`  rolled back from snapshot ${s.rolledBack.from} to ${s.rolledBack.to} at ${s.rolledBack.at}; the next sync brings upstream back`);
    if (s.snapshots.length === 0) lines.push('  snapshots  none');
    else {
      lines.push('  snapshots');
      for (const snap of [...s.snapshots].reverse()) {
        const size = snap.files !== null ? `${snap.files} files${snap.bytes !== null ? `, ${formatBytes(snap.bytes)}` : ''}` : '';
        const fate = snap.keep ? `kept: ${snap.keepReasons.join(', ')}` : 'goes at next collection';
        const leases = snap.leases.count > 0 ? `  leases: ${snap.leases.count} (pid ${snap.leases.pids.join(', ')})` : '';
        lines.push(`    ${String(snap.id).padStart(5)}  ${snap.committedAt ?? 'unknown time'}  ${size.padEnd(24)}  ${fate}${leases}`);
        if (snap.layers) {
          const mount = snap.mounted ? '' : '  NOT MOUNTED (reposnap mount brings it back)';
          lines.push(`           layers ${snap.layers.join(' on ')}${mount}`);
        }
      }
    }
    if (s.staging.length > 0) {
      lines.push('  staging');
      for (const st of s.staging) {
        const state = st.locked
          ? 'in use'
          : st.rejected
            ? `rejected, kept for inspection (${st.rejected.reason})`
            : st.fill === 'none'
              ? st.prepared
                ? 'prepared for the next sync (a clean clone)'
                : 'abandoned, a clean clone (resumable)'
              : `abandoned, ${st.fill === 'complete' ? 'filled' : 'partly filled'}${st.heading ? ` toward ${st.heading.slice(0, 12)}` : ''} (resumable)`;
        lines.push(`    ${st.tx}  base ${st.base ?? 'none'}  ${state}  ${st.createdAt ?? ''}`);
      }
    }
  }
  return lines.join('\n');
}
