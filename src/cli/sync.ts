/** `reposnap sync [REPO...]`: bring repositories up to date. */
import { ReposnapError, type LockHolder } from '../errors.js';
import type { CommandOutput, Repository, SyncPreview, SyncProgress, SyncReport, ToolOutput } from '../repository.js';
import type { SourceProgress } from '../sources/source.js';
import { changeJson, changeLine } from './snapshots.js';
import { combinedExit, type CommandContext } from './context.js';
import { errorJson, formatBytes, formatMs } from './output.js';
import { stopSignal, stoppedExit } from './signals.js';

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
    if (opts.json) ctx.out.results([]);
    return 0;
  }
  for (const r of selected) {
    if (r.config.syncType === undefined) throw new ReposnapError('EUSAGE', `repo ${r.name} has no sync-type; there is nothing to sync it from`);
  }

  if (opts.dryRun) return dryRun(ctx, selected, opts.json);

  const meters = new Map(selected.map((r) => [r.name, new SyncMeter(r.name)]));
  const show = (repo: string, draw: (m: SyncMeter) => boolean): void => {
    const m = meters.get(repo);
    if (m && ctx.out.progressEnabled) {
      const phase = draw(m);
      ctx.out.progress(repo, m.line(), phase);
    }
  };
  const onProgress = (e: SyncProgress): void => show(e.repo, (m) => m.update(e));
  // Said at once, as Portage and Nix do: a sync that seems to hang is waiting for another.
  const onWait = (repo: string) => (holder: LockHolder | undefined) => {
    ctx.out.notice(
      holder
        ? `waiting for the update of ${repo} by pid ${holder.pid} (${holder.operation ?? 'update'}${holder.since ? `, since ${holder.since}` : ''})`
        : `waiting for another process updating ${repo}`,
    );
    show(repo, (m) => m.waiting(holder));
  };
  const onToolOutput = ctx.out.opts.verbose ? (o: ToolOutput): void => ctx.out.tool(o.repo, o.tool, o.line) : undefined;
  // Hooks' and sync-verify-command's output: straight to stderr, unless it needs priorities (the journal), a board is drawn there or a log file records it.
  const commandLine = ctx.out.commandOutput;
  const onCommandOutput = commandLine ? (o: CommandOutput): void => commandLine(o) : undefined;
  // SIGINT, SIGTERM, SIGHUP: every sync stops, keeping what it fetched (signals.ts).
  const signal = stopSignal();

  // Different repositories have different locks, so they sync in parallel;
  // each says how it ended as soon as it has.
  const errors: unknown[] = [];
  const results: unknown[] = [];
  await Promise.all(
    selected.map(async (r, i) => {
      show(r.name, () => true);
      let report: SyncReport;
      try {
        report = await r.sync({
          wait: opts.wait,
          allowOlder: opts.allowOlder === true,
          onProgress,
          onWait: onWait(r.name),
          signal,
          ...(onToolOutput ? { onToolOutput } : {}),
          ...(onCommandOutput ? { onCommandOutput } : {}),
        });
      } catch (err) {
        ctx.out.progressDone(r.name);
        errors.push(err);
        results[i] = { repo: r.name, error: errorJson(err, r.name) };
        ctx.out.error(err, r.name);
        return;
      }
      ctx.out.progressDone(r.name);
      results[i] = report;
      ctx.out.info(describeReport(report));
      for (const w of report.warnings) ctx.out.warn(w);
      // A failed hook fails the sync (as in Portage); the snapshot stays.
      const failed = report.hooks.find((h) => h.status !== 0);
      if (failed) errors.push(new ReposnapError('EHOOK', `repo ${r.name}: post-sync hook ${failed.hook} failed`));
    }),
  );
  if (opts.json) ctx.out.results(results);
  return stoppedExit() ?? combinedExit(errors);
}

/**
 * One repository's sync as a progress line: the phase, the counts against
 * the total where the source knows it, the bytes (against theirs where
 * known), the rate. rsync's plan and the clone beside it run at once, and
 * share the line. Exported for its tests.
 */
export class SyncMeter {
  private phase: SyncProgress['phase'] | 'start' | 'wait' = 'start';
  private since = Date.now();
  private last: SyncProgress | undefined;
  private cloningBeside = false;
  private holder: LockHolder | undefined;

  constructor(
    readonly repo: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take `e`; true when it begins a new phase (drawn at once). */
  update(e: SyncProgress): boolean {
    if (e.phase === 'clone' && this.phase === 'plan') {
      const first = !this.cloningBeside;
      this.cloningBeside = true;
      return first;
    }
    const step = (x: SyncProgress | undefined): string | undefined => (x && 'step' in x ? x.step : undefined);
    const fresh = e.phase !== this.phase || step(e) !== step(this.last);
    if (fresh) {
      this.phase = e.phase;
      this.since = this.now();
      this.cloningBeside = false;
    }
    this.last = e;
    return fresh;
  }

  waiting(holder: LockHolder | undefined): boolean {
    this.phase = 'wait';
    this.holder = holder;
    return true;
  }

  line(): string {
    const head = `${this.repo}: `;
    const e = this.last;
    switch (this.phase) {
      case 'start':
        return `${head}starting`;
      case 'wait':
        return `${head}waiting for ${this.holder ? `pid ${this.holder.pid}` : 'another process'}`;
      case 'migrate':
        return `${head}preparing`;
      case 'plan': {
        const found = e?.phase === 'plan' && e.changed > 0 ? `: ${changedEntries(e)} to change${this.rate(e.changed, '')}` : '';
        return `${head}planning${found}${this.cloningBeside ? '; cloning beside it' : ''}`;
      }
      case 'clone': {
        const done = e?.phase === 'clone' && e.done > 0 ? ` (${count(e.done)} files and folders)` : '';
        return `${head}cloning the current snapshot${done}`;
      }
      case 'fetch':
        return `${head}${e?.phase === 'fetch' ? this.filling(e) : 'filling'}`;
      case 'verify':
        return `${head}verifying`;
      case 'commit':
        return `${head}committing`;
      case 'gc':
        return `${head}collecting old snapshots`;
      case 'hooks':
        return `${head}running post-sync hooks`;
    }
  }

  private filling(e: SourceProgress): string {
    if (e.step === 'download') {
      const bytes = e.bytes ?? 0;
      const of = e.totalBytes !== undefined && e.totalBytes > 0 ? ` of ${formatBytes(e.totalBytes)} (${Math.floor((bytes * 100) / e.totalBytes)}%)` : '';
      return `downloading ${formatBytes(bytes)}${of}${this.rate(bytes, 'B')}`;
    }
    // Where the bytes written are known and some are (not for deletions
    // alone), they and their rate say more than entries do.
    const written = e.bytes !== undefined && (e.bytes > 0 || (e.totalBytes ?? 0) > 0) ? e.bytes : undefined;
    const bytes = written === undefined ? '' : `; ${formatBytes(written)}${e.totalBytes !== undefined ? ` of ${formatBytes(e.totalBytes)}` : ''}${this.rate(written, 'B')}`;
    if (e.total !== undefined) {
      const done = Math.min(e.changed, e.total);
      const pct = e.total > 0 ? ` (${Math.floor((done * 100) / e.total)}%)` : '';
      return `filling ${count(done)} of ${count(e.total)}${pct}: ${changedEntries(e)}${bytes || this.rate(done, '')}`;
    }
    if (e.scanned === 0 && e.changed === 0) return 'filling';
    const checked = e.folders !== undefined ? `${changedEntries(e)} changed, ${count(e.scanned)} checked` : `${count(e.changed)} changed, ${count(e.scanned)} files and folders checked`;
    return `filling: ${checked}${bytes || this.rate(e.scanned, '')}`;
  }

  /** `n` per second since the phase began, after a second of it. */
  private rate(n: number, unit: 'B' | ''): string {
    const secs = (this.now() - this.since) / 1000;
    if (secs < 1 || n === 0) return '';
    const r = n / secs;
    return unit === 'B' ? `, ${formatBytes(Math.round(r))}/s` : `, ${count(Math.round(r))}/s`;
  }
}

/** Changed entries as files and folders (as status counts them: a file is anything not a folder). */
function changedEntries(e: SourceProgress): string {
  if (e.folders === undefined) return count(e.changed);
  const files = e.changed - e.folders;
  const parts = files > 0 || e.folders === 0 ? [`${count(files)} file${files === 1 ? '' : 's'}`] : [];
  if (e.folders > 0) parts.push(`${count(e.folders)} folder${e.folders === 1 ? '' : 's'}`);
  return parts.join(', ');
}

function count(n: number): string {
  return n.toLocaleString('en-US');
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
  const errors: unknown[] = [];
  const results: unknown[] = [];
  await Promise.all(selected.map(async (r, i) => {
    const name = r.name;
    ctx.out.progress(name, `${name}: planning`, true);
    let p: SyncPreview;
    try {
      p = await r.preview();
    } catch (err) {
      ctx.out.progressDone(name);
      errors.push(err);
      results[i] = { repo: name, error: errorJson(err, name) };
      ctx.out.error(err, name);
      return;
    }
    ctx.out.progressDone(name);
    results[i] = { repo: p.repo, outcome: p.outcome, changes: p.changes.map(changeJson) };
    const head =
      p.outcome === 'changes'
        ? `${name}: would change ${p.changes.length} ${p.changes.length === 1 ? 'entry' : 'entries'}`
        : p.outcome === 'up-to-date'
          ? `${name}: up to date, nothing to do`
          : p.outcome === 'first-sync'
            ? `${name}: not synced yet; the first sync would fetch the whole tree`
            : `${name}: the ${r.config.syncType ?? ''} source cannot tell what changed without fetching`;
    ctx.out.info([head, ...p.changes.map((c) => `  ${changeLine(c)}`)].join('\n'));
  }));
  if (json) ctx.out.results(results);
  return combinedExit(errors);
}
