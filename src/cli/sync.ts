/** `reposnap sync [REPO...]`: bring repositories up to date. */
import { ReposnapError, type LockHolder } from '../errors.js';
import type { Repository, SyncProgress, SyncReport } from '../repository.js';
import { changeJson, changeLine } from './snapshots.js';
import { combinedExit, type CommandContext } from './context.js';
import { errorMessage, formatBytes, formatMs } from './output.js';

export interface SyncCommandOptions {
  wait: boolean;
  allowOlder?: boolean;
  dryRun?: boolean;
  json: boolean;
}

export async function syncCommand(ctx: CommandContext, names: string[], opts: SyncCommandOptions): Promise<number> {
  const repos = ctx.repos();
  const selected = names.length > 0 ? repos.select(names) : repos.autoSync();
  if (selected.length === 0) {
    ctx.out.info('nothing to sync: no repository has a sync-type with auto-sync = yes');
    if (opts.json) ctx.out.json({ results: [] });
    return 0;
  }
  for (const r of selected) {
    if (r.config.syncType === undefined) throw new ReposnapError('EUSAGE', `repo ${r.name} has no sync-type; there is nothing to sync it from`);
  }

  if (opts.dryRun) return dryRun(ctx, selected, opts.json);

  const onProgress = (e: SyncProgress): void => ctx.out.progress(describeProgress(e));
  // Said at once, as Portage and Nix do: a sync that seems to hang is waiting for another.
  const onWait = (repo: string) => (holder: LockHolder | undefined) =>
    ctx.out.notice(
      holder
        ? `waiting for the update of ${repo} by pid ${holder.pid} (${holder.operation ?? 'update'}${holder.since ? `, since ${holder.since}` : ''})`
        : `waiting for another process updating ${repo}`,
    );
  // Different repositories have different locks, so they sync in parallel.
  const settled = await Promise.allSettled(selected.map((r) => r.sync({ wait: opts.wait, allowOlder: opts.allowOlder === true, onProgress, onWait: onWait(r.name) })));

  const errors: unknown[] = [];
  const results: unknown[] = [];
  settled.forEach((s, i) => {
    const name = (selected[i] as { name: string }).name;
    if (s.status === 'fulfilled') {
      results.push(s.value);
      ctx.out.info(describeReport(s.value));
      for (const w of s.value.warnings) ctx.out.warn(w);
      // A failed hook fails the sync (as in Portage); the snapshot stays.
      const failed = s.value.hooks.find((h) => h.status !== 0);
      if (failed) errors.push(new ReposnapError('EHOOK', `repo ${name}: post-sync hook ${failed.hook} failed`));
    } else {
      errors.push(s.reason);
      const code = s.reason instanceof ReposnapError ? s.reason.code : 'EINTERNAL';
      results.push({ repo: name, error: { code, message: errorMessage(s.reason) } });
      ctx.out.error(s.reason, name);
    }
  });
  if (opts.json) ctx.out.json({ results });
  return combinedExit(errors);
}

function describeProgress(e: SyncProgress): string {
  switch (e.phase) {
    case 'migrate':
      return `${e.repo}: preparing`;
    case 'clone':
      return e.done > 0 ? `${e.repo}: cloning latest snapshot (${e.done} entries)` : `${e.repo}: cloning latest snapshot`;
    case 'fetch':
      return `${e.repo}: syncing (${e.scanned} checked, ${e.changed} changed)`;
    case 'verify':
      return `${e.repo}: verifying`;
    case 'commit':
      return `${e.repo}: publishing`;
    case 'hooks':
      return `${e.repo}: running post-sync hooks`;
    case 'gc':
      return `${e.repo}: collecting old snapshots`;
  }
}

export function describeReport(r: SyncReport): string {
  const c = r.changes;
  const parts: string[] = [];
  if (r.migrated !== null) parts.push(`migrated the existing directory as snapshot ${r.migrated}`);
  if (r.outcome === 'up-to-date') {
    const at = r.snapshot ? ` (snapshot ${r.snapshot.id})` : '';
    return `${r.repo}: up to date${at}${parts.length ? `; ${parts.join('; ')}` : ''}`;
  }
  const what = r.snapshot ? `updated to snapshot ${r.snapshot.id}` : `updated (${r.mode})`;
  const delta = `+${c.added} ~${c.updated} -${c.deleted}, ${formatBytes(c.bytesTransferred)} transferred`;
  const t = r.timings;
  const visible = t.prepareMs + t.fetchMs + t.verifyMs + t.commitMs;
  let line = `${r.repo}: ${what} (${delta}) visible after ${formatMs(visible)}`;
  if (r.mode === 'rcu') {
    const what = r.collected.length > 0 ? `collected snapshot${r.collected.length > 1 ? 's' : ''} ${r.collected.join(', ')}` : 'collection';
    line += `; ${what} took ${formatMs(t.gcMs)} after that`;
  }
  if (r.verified) line += `; verified ${r.verified.incremental ? 'incrementally' : 'in full'} (${r.verified.hashed} files hashed), signed by ${r.verified.signedBy.slice(-16)}, TIMESTAMP ${r.verified.timestamp}`;
  if (r.resumed) line += '; resumed an interrupted update';
  if (r.flattened) line += `; flattened snapshot ${r.flattened.snapshot}'s ${r.flattened.layers} layers into one in ${formatMs(r.flattened.ms)}`;
  if (parts.length) line += `; ${parts.join('; ')}`;
  return line;
}

/** `sync --dry-run`: what each sync would change, nothing written. */
async function dryRun(ctx: CommandContext, selected: Repository[], json: boolean): Promise<number> {
  const settled = await Promise.allSettled(selected.map((r) => r.preview()));
  const errors: unknown[] = [];
  const results: unknown[] = [];
  settled.forEach((s, i) => {
    const name = (selected[i] as Repository).name;
    if (s.status === 'rejected') {
      errors.push(s.reason);
      results.push({ repo: name, error: { code: s.reason instanceof ReposnapError ? s.reason.code : 'EINTERNAL', message: errorMessage(s.reason) } });
      ctx.out.error(s.reason, name);
      return;
    }
    const p = s.value;
    results.push({ repo: p.repo, outcome: p.outcome, changes: p.changes.map(changeJson) });
    const head =
      p.outcome === 'changes'
        ? `${name}: would change ${p.changes.length} ${p.changes.length === 1 ? 'entry' : 'entries'}`
        : p.outcome === 'up-to-date'
          ? `${name}: up to date, nothing to do`
          : p.outcome === 'first-sync'
            ? `${name}: not synced yet; the first sync would fetch the whole tree`
            : `${name}: the ${selected[i]?.config.syncType ?? ''} source cannot tell what changed without fetching`;
    ctx.out.info([head, ...p.changes.map((c) => `  ${changeLine(c)}`)].join('\n'));
  });
  if (json) ctx.out.json({ results });
  return combinedExit(errors);
}
