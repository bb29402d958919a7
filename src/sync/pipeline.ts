/**
 * A sync, top to bottom, as named steps:
 *
 *   take the repo -> precheck (plan) -> open staging -> fill (apply) -> verify
 *     -> commit -> collect -> prepare the next -> hooks
 *
 * Each step is a small function over one SyncRun, which holds the
 * repository, the source, the report and the clock: the timings are kept
 * here and nowhere else. The storage answers for its own mode (what the
 * current tree is, how a reader holds it, what to prepare next), so nothing
 * here asks which kind of storage it has, and no step hands the storage a
 * callback: the precheck asks the source between taking the repo and
 * opening staging. The one overlap: a source whose precheck plans (rsync)
 * returns as soon as it sees a change, with a plan that goes on growing:
 * staging is opened beside the rest of the plan (making it only reads the
 * current tree), and the fill applies the plan as it grows. A plan nobody
 * uses (a resumed staging tree, a failure, an abort) is stopped. And where
 * the verification will be incremental, the sub-Manifests the fill writes
 * are read ahead on a low-priority thread while it goes on; the
 * verification takes what was read only for the very bytes it reads.
 *
 * Aborting (SyncOptions.signal, util/abort.ts): up to the commit, an abort
 * stops what runs (children, downloads, walks), each step lets go of what
 * it holds as after a failure, keeping staging for the next sync to resume,
 * and the sync rejects with an AbortedError once its children are gone: the
 * previous snapshot stays current. The commit itself is not cut short (it
 * takes milliseconds, and a half-made commit helps nobody); once it has
 * begun, an abort only skips what is left to do after it (collection,
 * preparing the next staging, hooks), with a warning each, and the sync
 * resolves: it rejects as aborted exactly when it published nothing.
 */
import type { RepoConfig, StorageMode } from '../config/repos.js';
import { AbortedError, isOutOfSpace, ReposnapError, type LockHolder } from '../errors.js';
import { createSource } from '../sources/index.js';
import { emptyChanges, type ChangeStats, type PrecheckResult, type SourcePlan, type SourceProgress, type SourceResult, type SyncSource, type ToolOutputListener, type TreeStats } from '../sources/source.js';
import type { GcResult } from '../store/gc.js';
import type { PendingUpdate, RepoStorage, StorageProgress, Update } from '../store/storage.js';
import type { MetaManifestResult } from '../trust/metamanifest.js';
import { abortable, uninterruptible } from '../util/abort.js';
import { failpoint } from '../util/failpoint.js';
import type { VerificationPrep } from './verification-prep.js';
import { checkAuthenticity, prepareVerification, type Verified } from './authenticity.js';
import { checkSyncUser, fill, needsWorker } from './fill.js';
import { runHooks, type HookResult } from './hooks.js';
import { runVerifyCommand } from './verify.js';

export interface SyncOptions {
  /** Wait for a concurrent update of the same repo (default true). */
  wait?: boolean;
  /** Accept a tree older than the current one (rollback protection is off for this sync). */
  allowOlder?: boolean;
  /** Called with progress; the CLI draws it on a terminal. */
  onProgress?: (event: SyncProgress) => void;
  /** Called once when another process is updating the repo and this sync waits for it. */
  onWait?: (holder: LockHolder | undefined) => void;
  /**
   * Called with each line the tools the sync runs print (rsync's itemized
   * changes and its complaints, git's fetch): `reposnap -v` shows them.
   */
  onToolOutput?: (output: ToolOutput) => void;
  /**
   * Called with each line the commands the configuration names print
   * (post-sync hooks, sync-verify-command), as it comes, instead of their
   * output going to our stderr. Without it, both their streams go to our
   * stderr as they come, untouched (stdout too, so that a caller's own
   * stdout stays clean). With it, reposnap writes nothing of theirs: the
   * listener decides (the CLI gives each line a syslog priority when stderr
   * is the journal).
   */
  onCommandOutput?: (output: CommandOutput) => void;
  /**
   * Abort the sync: its child processes (rsync, git, gpg, decompressors...)
   * are stopped and waited for, downloads end, staging is kept for the next
   * sync to resume, the repo is let go, and the sync rejects with an
   * AbortedError (code EABORTED); the previous snapshot stays current (in
   * place, where the location is the target, it holds what was written,
   * as after any failure). Already aborted: rejects at once, touching
   * nothing. Once the commit has
   * begun, the sync resolves instead (see the top of pipeline.ts).
   */
  signal?: AbortSignal;
}

/** A line of a tool's output: which repo's sync ran it, which tool (rsync, "rsync --dry-run" for a plan, git). */
export interface ToolOutput {
  repo: string;
  tool: string;
  line: string;
}

/** A line a command the configuration names printed (see SyncOptions.onCommandOutput). */
export interface CommandOutput {
  repo: string;
  /** A post-sync hook (`name` is its path), or sync-verify-command (`name` is the command). */
  command: 'hook' | 'verify';
  name: string;
  /** The command's stream the line came on. */
  stream: 'stdout' | 'stderr';
  /** Without its newline; decoded as UTF-8. */
  line: string;
  /** The same line as the bytes the command wrote (what to pass on untouched). */
  bytes: Buffer;
}

/**
 * What a sync is doing, in order: migrating a plain location, finding out
 * whether upstream changed (plan: rsync's dry run, git's fetch, a
 * conditional GET), cloning the current snapshot into staging, filling it
 * (fetch), verifying, committing, collecting, running hooks.
 */
export type SyncProgress =
  | ({ repo: string; phase: 'migrate' | 'clone' } & Pick<StorageProgress, 'done'>)
  | ({ repo: string; phase: 'plan' | 'fetch' } & SourceProgress)
  | { repo: string; phase: 'verify' | 'commit' | 'gc' | 'hooks' };

export interface SyncReport {
  repo: string;
  mode: StorageMode;
  /** "updated": a new tree is visible; "up-to-date": nothing changed upstream. */
  outcome: 'updated' | 'up-to-date';
  /** The snapshot readers now get (rcu). */
  snapshot: { id: number; path: string } | null;
  /** A snapshot made first from a plain-directory location (rcu). */
  migrated: number | null;
  backend: string | null;
  /** The update went on from an interrupted one's tree. */
  resumed: boolean;
  /** The update started from a clone made ahead of time (sync-rcu-prepare-staging). */
  prepared: boolean;
  /** Upstream was found unchanged (git commit id, HTTP 304) before any tree was cloned. */
  unchangedBeforeClone: boolean;
  changes: ChangeStats;
  tree: TreeStats;
  /** Snapshot ids collected after the commit. */
  collected: number[];
  /** overlayfs: the new snapshot's stack reached its bound and was flattened after the commit (part of prepareNextMs). */
  flattened: { snapshot: number; layers: number; ms: number } | null;
  timings: SyncTimings;
  /** The MetaManifest verification the new tree passed (absent when not asked for, or nothing changed). */
  verified: VerifiedSummary | null;
  /** Post-sync hooks that ran, with how they ended. */
  hooks: HookResult[];
  /** Problems that did not undo the sync (a collection or a hook that failed...). */
  warnings: string[];
}

/** What the new tree's MetaManifest verification found (the report's share of MetaManifestResult). */
export type VerifiedSummary = Pick<MetaManifestResult, 'signedBy' | 'timestamp' | 'incremental' | 'files' | 'hashed' | 'bytesHashed' | 'folders' | 'foldersListed' | 'manifests' | 'readAhead'>;

/**
 * Milliseconds: preparing (locks, migration, clone), fetching, verifying,
 * publishing, collecting, cloning ahead for the next sync, in all. The new
 * tree is visible after prepareMs + fetchMs + verifyMs + commitMs.
 */
export interface SyncTimings {
  prepareMs: number;
  fetchMs: number;
  verifyMs: number;
  commitMs: number;
  gcMs: number;
  prepareNextMs: number;
  totalMs: number;
}

/** What a sync works on. */
export interface SyncTarget {
  readonly name: string;
  readonly config: RepoConfig;
  readonly storage: RepoStorage;
}

/** A progress event before the repo's name is added to it. */
type PhaseEvent = SyncProgress extends infer E ? (E extends SyncProgress ? Omit<E, 'repo'> : never) : never;

type Phase = 'prepare' | 'fetch' | 'verify' | 'commit' | 'gc' | 'prepareNext';

/** One sync in progress: its parts, its report and its clock. */
class SyncRun {
  readonly source: SyncSource;
  readonly report: SyncReport;
  /** The commit has begun: an abort no longer makes the sync fail. */
  committing = false;
  private readonly t0 = performance.now();

  constructor(
    readonly repo: SyncTarget,
    readonly opts: SyncOptions,
  ) {
    this.source = createSource(repo.config);
    this.report = {
      repo: repo.name,
      mode: repo.storage.mode,
      outcome: 'up-to-date',
      snapshot: null,
      migrated: null,
      backend: null,
      resumed: false,
      prepared: false,
      unchangedBeforeClone: false,
      changes: emptyChanges(),
      tree: { files: 0, bytes: 0 },
      collected: [],
      flattened: null,
      timings: { prepareMs: 0, fetchMs: 0, verifyMs: 0, commitMs: 0, gcMs: 0, prepareNextMs: 0, totalMs: 0 },
      verified: null,
      hooks: [],
      warnings: [],
    };
  }

  /** Run `step`, adding its time to `phase`. */
  async timed<T>(phase: Phase, step: () => Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await step();
    } finally {
      this.report.timings[`${phase}Ms`] += performance.now() - t;
    }
  }

  get aborted(): boolean {
    return this.opts.signal?.aborted === true;
  }

  /** Fail now if the sync was aborted, after `letGo` let go of what the step holds. */
  async stopIfAborted(letGo: () => Promise<void>): Promise<void> {
    if (!this.aborted) return;
    await letGo();
    (this.opts.signal as AbortSignal).throwIfAborted();
  }

  /** Whether `what`, left to do after the sync's main work, is to be skipped because the sync was aborted (saying so). */
  skipped(what: string): boolean {
    if (!this.aborted) return false;
    const at = !this.committing ? '' : this.report.snapshot ? ` after snapshot ${this.report.snapshot.id} was published` : ' after the update was published';
    this.report.warnings.push(`repo ${this.repo.name}: aborted${at}; ${what} skipped`);
    return true;
  }

  progress(event: PhaseEvent): void {
    this.opts.onProgress?.({ repo: this.repo.name, ...event } as SyncProgress);
  }

  /** Where the source sends its tools' lines: nowhere, unless someone listens. */
  get toolOutput(): { onToolOutput: ToolOutputListener } | Record<string, never> {
    const listener = this.opts.onToolOutput;
    if (!listener) return {};
    const repo = this.repo.name;
    return { onToolOutput: (tool: string, line: string) => listener({ repo, tool, line }) };
  }

  finish(): SyncReport {
    this.report.timings.totalMs = performance.now() - this.t0;
    return this.report;
  }
}

/** Bring `repo` up to date from its source. */
export async function runSync(repo: SyncTarget, opts: SyncOptions = {}): Promise<SyncReport> {
  const { signal } = opts;
  if (signal === undefined) return steps(new SyncRun(repo, opts));
  if (signal.aborted) throw abortedSync(repo.name, signal, undefined);
  const run = new SyncRun(repo, opts);
  try {
    return await abortable(signal, () => steps(run));
  } catch (err) {
    // Once the commit has begun, a failure is what it says, not "aborted, nothing changed".
    if (!signal.aborted || run.committing) throw err;
    // What the stopped step reported (rsync killed...) says nothing more.
    throw abortedSync(repo.name, signal, repo.storage.mode);
  }
}

/** `mode`: of the storage the sync had begun to change; undefined when it had not started. */
function abortedSync(repo: string, signal: AbortSignal, mode: StorageMode | undefined): AbortedError {
  const reason: unknown = signal.reason;
  // The reason, when the caller gave one (the default DOMException says only "aborted").
  const name = reason instanceof Error ? reason.name : undefined;
  const why = typeof reason === 'string' ? `: ${reason}` : name === 'TimeoutError' ? ': timed out' : reason instanceof Error && name !== 'AbortError' ? `: ${reason.message}` : '';
  // In place, the location is the target: what was written before the abort is there, as after any failure.
  const left = mode === 'in-place' ? 'the location holds what was written until then (in-place mode)' : 'nothing was published';
  return new AbortedError(`repo ${repo}: sync aborted${why}; ${left}`, reason);
}

async function steps(run: SyncRun): Promise<SyncReport> {
  const { repo } = run;
  // An unknown sync-user is a configuration error: found before anything is touched.
  await checkSyncUser(repo.config);
  const pending = await run.timed('prepare', () => takeRepo(run));
  await run.stopIfAborted(() => pending.release());
  // The plan's progress is shown until the fill begins (it goes on beside the clone), then the fill's.
  const planProgress = { shown: true };
  const found = await run.timed('prepare', () => precheck(run, pending, planProgress));
  // A plan nobody is going to use is stopped (rsync's dry run may still go on).
  const dropPlan = (): Promise<void> => (found.unchanged ? undefined : found.plan?.stop?.()) ?? Promise.resolve();
  await run.stopIfAborted(async () => {
    await dropPlan();
    await pending.release();
  });
  if (found.unchanged) {
    await pending.release();
    run.report.unchangedBeforeClone = true;
  } else {
    const update = await run.timed('prepare', () => openStaging(run, pending)).catch(async (err: unknown) => {
      await dropPlan();
      throw err;
    });
    // Kept as it is: a clone to start from, or the resumed tree as it was.
    const keep = async (): Promise<void> => {
      await dropPlan();
      await repo.storage.abortUpdate(update, { keep: true });
    };
    await run.stopIfAborted(keep);
    // The plan holds for a target that is an exact clone of the tree it was made against.
    const plan = found.plan && !update.dirty && update.baseTree?.dir === pending.current ? found.plan : undefined;
    if (plan === undefined) await dropPlan();
    planProgress.shown = false;
    // The verification gets ready while the fill runs, and reads ahead the changed sub-Manifests it writes (see verify).
    const prep = await prepareVerification({ repo: repo.name, metamanifest: repo.config.metamanifest, update, untrustedWriter: needsWorker(repo.config) });
    let filled: { result: SourceResult; changed: boolean };
    let verified: Verified | undefined;
    try {
      filled = await run
        .timed('fetch', () => fillStaging(run, update, plan, prep ? (paths) => prep.offer(paths) : undefined))
        .finally(async () => {
          // What was offered is still read while the verification walks; closing the preparations stops it.
          prep?.readAhead?.endOffers();
          await dropPlan();
        });
      await failpoint('filled');
      await run.stopIfAborted(keep);
      if (filled.changed) verified = await run.timed('verify', () => verify(run, update, prep));
    } catch (err) {
      await prep?.close();
      throw err;
    }
    // The preparations serve this verification only. Let go while the
    // commit runs (threads ended, the keyring's home removed: some 20 ms),
    // not before it, so that they do not hold the new snapshot back; waited
    // for after it. Their error (kept meanwhile, not left unhandled) is
    // the sync's where nothing was published, else a warning: the snapshot
    // is current by then.
    const letGo = (prep?.close() ?? Promise.resolve()).then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    let published = false;
    try {
      if (filled.changed) {
        await run.stopIfAborted(keep);
        run.committing = true;
        // Not cut short by an abort: see the top of this file.
        await uninterruptible(() => run.timed('commit', () => commit(run, update, filled.result, verified)));
        published = true;
      } else {
        await repo.storage.abortUpdate(update, { unchanged: true });
      }
    } catch (err) {
      await letGo;
      throw err;
    }
    const closing = await letGo;
    if (closing && !published) throw closing.err;
    if (closing) run.report.warnings.push(`repo ${repo.name}: ending the verification's helpers failed: ${closing.err instanceof Error ? closing.err.message : String(closing.err)}`);
  }
  // Nothing published: an abort fails the sync. After a commit, it skips what is left.
  const stopIfNothingPublished = (): Promise<void> => (run.committing ? Promise.resolve() : run.stopIfAborted(() => Promise.resolve()));
  await stopIfNothingPublished();
  await nameCurrentSnapshot(run);
  await recordCheck(run);
  if (!run.skipped('collection')) await run.timed('gc', () => collect(run));
  if (run.report.outcome === 'updated' && !run.skipped('preparing the next staging')) await run.timed('prepareNext', () => prepareNext(run));
  await runPostSyncHooks(run);
  await stopIfNothingPublished();
  return run.finish();
}

/** Lock the repo; migrate or repair the store where needed. Nothing is cloned. */
async function takeRepo(run: SyncRun): Promise<PendingUpdate> {
  const pending = await run.repo.storage.beginUpdate({
    wait: run.opts.wait ?? true,
    ...(run.opts.onWait ? { onWait: run.opts.onWait } : {}),
    ...(run.opts.signal ? { signal: run.opts.signal } : {}),
    onProgress: (p: StorageProgress) => run.progress(p),
  });
  run.report.migrated = pending.migrated?.id ?? null;
  return pending;
}

/**
 * Whether upstream is known to be unchanged, found before any tree is
 * cloned: git and tarball ask upstream; local compares it with the current
 * snapshot, read-only; rsync plans against it, and returns at the first
 * change while its plan goes on growing (staging is opened meanwhile, and
 * the fill applies the plan as it grows). Not when fetching must run as
 * sync-user (reading upstream must be that user's). On failure the repo is
 * let go.
 */
async function precheck(run: SyncRun, pending: PendingUpdate, progress: { shown: boolean }): Promise<PrecheckResult> {
  const { source } = run;
  if (!source.precheck || needsWorker(run.repo.config) || !pending.precheckable) return { unchanged: false };
  run.progress({ phase: 'plan', scanned: 0, changed: 0 });
  try {
    return await source.precheck({
      repo: run.repo.name,
      previous: pending.previous,
      cacheDir: pending.cacheDir,
      lockFds: pending.lockFds,
      ...(pending.current !== undefined ? { current: pending.current } : {}),
      onProgress: (p: SourceProgress) => progress.shown && run.progress({ phase: 'plan', ...p }),
      ...run.toolOutput,
    });
  } catch (err) {
    await pending.release();
    throw err;
  }
}

/** Make the staging tree: a clone of the current snapshot, or an interrupted update's to resume. */
async function openStaging(run: SyncRun, pending: PendingUpdate): Promise<Update> {
  const update = await pending.open({ onProgress: (p: StorageProgress) => run.progress(p) });
  run.report.backend = update.backend ?? null;
  run.report.resumed = update.resumed;
  run.report.prepared = update.prepared ?? false;
  await failpoint('staged');
  return update;
}

/**
 * Run the source's fill into the staging tree, holding it to the resume
 * contract: every write is announced first (and recorded by the storage),
 * so a fill that reports changes without having announced any is a bug,
 * caught here rather than by a wrong resume later. `changed`: whether the
 * tree now differs from its base, not only whether this fill changed it,
 * since a resumed tree may hold the work of an earlier, interrupted one.
 */
async function fillStaging(run: SyncRun, update: Update, plan: SourcePlan | undefined, onWritten: ((paths: string[]) => void) | undefined): Promise<{ result: SourceResult; changed: boolean }> {
  const { repo, source } = run;
  let announced = false;
  let result: SourceResult;
  let changed: boolean;
  run.progress({ phase: 'fetch', scanned: 0, changed: 0 });
  try {
    result = await fill(repo.config, source, {
      repo: repo.name,
      target: update.target,
      excludeTop: update.excludeTop,
      sharesInodes: update.sharesInodes,
      ...(plan ? { plan } : {}),
      lockFds: update.lockFds,
      cacheDir: update.cacheDir,
      scratchDir: update.scratchDir,
      ...(update.previous ? { previous: update.previous } : {}),
      beginWriting: async (revision?: string) => {
        announced = true;
        await update.beginWriting(revision);
      },
      onProgress: (p: SourceProgress) => run.progress({ phase: 'fetch', ...p }),
      ...(onWritten ? { onWritten } : {}),
      ...run.toolOutput,
    });
    if (result.changed && !announced) {
      throw new ReposnapError('EINTERNAL', `repo ${repo.name}: the ${source.type} source changed the tree without announcing it (resume contract)`);
    }
    changed = result.changed || update.mustCommit || (update.dirty && (await update.differsFromBase()));
    await update.endFill(changed, result.revision);
  } catch (err) {
    // Keep what was fetched: the next sync resumes from it. Unless the
    // filesystem is full: then what was fetched is what fills it, and
    // keeping it would make the next sync fail too.
    await repo.storage.abortUpdate(update, { keep: !isOutOfSpace(err) });
    throw err;
  }
  run.report.changes = result.changes;
  run.report.tree = result.tree;
  run.report.warnings.push(...(result.warnings ?? []));
  return { result, changed };
}

/**
 * Check the finished tree before anything is visible: authenticity
 * (MetaManifest, rollback), then sync-verify-command in a tree known to be
 * upstream's. A refusal keeps the tree for inspection, rejected.
 */
async function verify(run: SyncRun, update: Update, prep: VerificationPrep | undefined): Promise<Verified | undefined> {
  const { config, name, storage } = run.repo;
  run.progress({ phase: 'verify' });
  try {
    const current = await storage.current();
    const verified = await checkAuthenticity({
      repo: name,
      metamanifest: config.metamanifest,
      update,
      current: current?.path,
      allowOlder: run.opts.allowOlder ?? false,
      untrustedWriter: needsWorker(config),
      ...(prep ? { prep } : {}),
    });
    if (verified) {
      const { signedBy, timestamp, incremental, files, hashed, bytesHashed, folders, foldersListed, manifests, readAhead } = verified.result;
      run.report.verified = { signedBy, timestamp, incremental, files, hashed, bytesHashed, folders, foldersListed, manifests, readAhead };
    }
    const command = config.verifyCommand;
    if (command !== undefined) {
      const listener = run.opts.onCommandOutput;
      const onOutput = listener ? (stream: 'stdout' | 'stderr', bytes: Buffer) => listener({ repo: name, command: 'verify', name: command, stream, line: bytes.toString('utf8'), bytes }) : undefined;
      await runVerifyCommand(name, command, update.target, onOutput);
    }
    return verified;
  } catch (err) {
    // A check stopped by an abort refused nothing: the tree is kept to resume, not for inspection.
    if (run.aborted) await storage.abortUpdate(update, { keep: true });
    else await storage.abortUpdate(update, { inspect: true, reason: err instanceof Error ? err.message : String(err) });
    throw err;
  }
}

/** Seal and publish, recording what the fill found. */
async function commit(run: SyncRun, update: Update, result: SourceResult, verified: Verified | undefined): Promise<void> {
  run.progress({ phase: 'commit' });
  const committed = await run.repo.storage.commitUpdate(update, {
    source: { type: run.source.type, uri: run.source.uri },
    ...(result.revision !== undefined ? { revision: result.revision } : {}),
    ...(result.state !== undefined ? { state: result.state } : {}),
    changes: result.changes,
    tree: result.tree,
    ...(verified ? { verified: verified.record } : {}),
    ...(verified?.folderIndex !== undefined ? { folderIndex: verified.folderIndex } : {}),
  });
  run.report.outcome = 'updated';
  if (committed.snapshot) run.report.snapshot = { id: committed.snapshot.id, path: committed.snapshot.path };
}

/** The report names the snapshot readers get, also when nothing was committed. */
async function nameCurrentSnapshot(run: SyncRun): Promise<void> {
  if (run.report.snapshot !== null) return;
  const cur = await run.repo.storage.current();
  if (cur?.id != null) run.report.snapshot = { id: cur.id, path: cur.path };
}

/** The sync ended well: say when, and how, for `list` and `status`. */
async function recordCheck(run: SyncRun): Promise<void> {
  try {
    await run.repo.storage.recordCheck({ at: new Date().toISOString(), outcome: run.report.outcome });
  } catch (err) {
    run.report.warnings.push(`repo ${run.repo.name}: recording the sync's time failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Collection runs after the new snapshot is visible and the repo is free
 * for the next update; its failure does not undo a good sync.
 */
async function collect(run: SyncRun): Promise<void> {
  run.progress({ phase: 'gc' });
  let gc: GcResult | undefined;
  try {
    gc = await run.repo.storage.garbageCollection();
  } catch (err) {
    run.report.warnings.push(`repo ${run.repo.name}: collecting old snapshots failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  run.report.collected = gc?.removed ?? [];
}

/** After a new tree was published, what the next sync starts from (sync-rcu-prepare-staging). */
async function prepareNext(run: SyncRun): Promise<void> {
  if (run.report.outcome !== 'updated') return;
  try {
    const justCommitted = run.report.snapshot?.id;
    run.report.flattened = (await run.repo.storage.prepareNext(justCommitted !== undefined ? { justCommitted } : {})).flattened;
  } catch (err) {
    run.report.warnings.push(`repo ${run.repo.name}: preparing staging for the next sync failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Post-sync hooks, holding the current tree still while they run (rcu: a lease). */
async function runPostSyncHooks(run: SyncRun): Promise<void> {
  const { config, name, storage } = run.repo;
  if (config.hooksDir === undefined || (run.report.outcome !== 'updated' && config.hooksOnlyOnChange)) return;
  if (run.skipped('post-sync hooks')) return;
  run.progress({ phase: 'hooks' });
  const hooksDir = config.hooksDir;
  const args = [name, config.syncUri ?? '', config.location];
  const listener = run.opts.onCommandOutput;
  const onOutput = listener ? (hook: string, stream: 'stdout' | 'stderr', bytes: Buffer) => listener({ repo: name, command: 'hook', name: hook, stream, line: bytes.toString('utf8'), bytes }) : undefined;
  run.report.hooks = await storage.withReaderView((view) =>
    runHooks(
      hooksDir,
      args,
      {
        REPOSNAP_REPO: name,
        ...(view.id !== null ? { REPOSNAP_SNAPSHOT: view.path, REPOSNAP_SNAPSHOT_ID: String(view.id) } : {}),
      },
      onOutput,
    ),
  );
  for (const h of run.report.hooks) {
    if (h.status !== 0) run.report.warnings.push(`repo ${name}: post-sync hook ${h.hook} failed (${h.signal ? `killed by ${h.signal}` : `exit ${h.status}`})`);
  }
}
