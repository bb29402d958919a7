/**
 * A sync source fills a target directory (a staging clone of the current
 * snapshot, a quarantine copy, or the location itself) so that it equals the
 * upstream tree, and says whether anything changed.
 *
 * The rule every source keeps: never write into an existing file. The target
 * shares inodes with published snapshots, so a changed file is written under
 * a new name and renamed over the old one.
 */
import fs from 'node:fs/promises';
import { errnoCode, ReposnapError } from '../errors.js';
import type { ChangeStats, MirrorProgress, TreeStats } from '../tree/mirror.js';
import type { TreeChange } from '../tree/diff.js';

export { emptyChanges, type ChangeStats, type TreeStats } from '../tree/mirror.js';
export type { PreviousTree } from '../tree/provenance.js';
import type { PreviousTree } from '../tree/provenance.js';

export interface SourceResult {
  changed: boolean;
  changes: ChangeStats;
  tree: TreeStats;
  /** An upstream revision, where the source has one (a git commit, a tarball's sha256). */
  revision?: string;
  /** Source-specific facts to remember with the result (HTTP validators...). */
  state?: Record<string, string>;
  /** What the user should know that did not stop the fill (upstream changed while it ran...). */
  warnings?: string[];
}

/**
 * A source's own record of what differs between upstream and the current
 * tree, made by its precheck (see RsyncPlan). The pipeline only carries it
 * from the precheck to the fill, and only when the target is an exact clone
 * of the tree the plan was made against.
 */
export interface SourcePlan {
  readonly source: string;
  /**
   * Stop making the plan, where it is still being made (rsync's dry run
   * goes on after the precheck returns, for the fill to apply as it
   * grows), and wait till it has stopped: called when nobody will use it.
   */
  stop?(): Promise<void>;
}

/** What a precheck found: upstream unchanged, or changed (with the plan, where the source makes one). */
export type PrecheckResult = { unchanged: true } | { unchanged: false; plan?: SourcePlan };

/**
 * Progress of a plan or a fill: entries examined and changed so far, and
 * what else the source knows. Files and folders are counted as `status`
 * counts them: a file is every entry that is not a folder.
 */
export interface SourceProgress extends MirrorProgress {
  /** A step of the fill that is not about entries: downloading an archive. */
  step?: 'download';
  /** Of the entries changed so far, how many are folders. */
  folders?: number;
  /** How many entries this step handles in all, where known (rsync applying its plan). */
  total?: number;
  /**
   * Bytes so far: of an archive, received (the download step); of files,
   * written into the target (rsync: the length of each file it wrote,
   * counted once the file is complete; not what went over the wire, which
   * delta transfer and compression make less).
   */
  bytes?: number;
  /** The bytes `bytes` counts towards, where known (an archive's length; the files rsync's plan writes). */
  totalBytes?: number;
}

/** A line of output of a tool a source runs (rsync, git), for whoever shows it (`reposnap -v`). */
export type ToolOutputListener = (tool: string, line: string) => void;

export interface FillContext {
  /** Repository name, for messages. */
  repo: string;
  /** Directory to bring up to date. */
  target: string;
  /** Names at the top of the target that belong to reposnap, left alone. */
  excludeTop: string[];
  /**
   * Lock descriptors a child process working on the target must inherit: if
   * reposnap dies, the target stays locked until the child is gone too, so no
   * other update takes it over while an orphaned rsync still writes there.
   */
  lockFds?: number[];
  /** A directory the source may keep between syncs (a git mirror...). */
  cacheDir?: string;
  /** A directory of this update's own (a download), kept with it for resume. */
  scratchDir?: string;
  /** What the target was made from, if known. */
  previous?: PreviousTree;
  /**
   * The target holds inodes a published tree holds too (a hardlinked
   * clone): no existing file or symlink may change in place, not even its
   * mode, owner or times. New content is renamed over the old entry; an
   * entry whose attributes change gets an inode of its own first.
   */
  sharesInodes: boolean;
  /**
   * The source's precheck plan, made against the tree this target is an
   * exact clone of: the fill may apply just that instead of comparing again.
   */
  plan?: SourcePlan;
  /**
   * The resume contract: a source calls this before its first write into
   * the target (after finding the revision it heads for, where it has
   * one), and not at all when it writes nothing. What it records is what
   * lets an interrupted update resume correctly.
   */
  beginWriting(revision?: string): Promise<void>;
  onProgress?: (p: SourceProgress) => void;
  onToolOutput?: ToolOutputListener;
  /**
   * Tree-relative paths of files the fill has finished writing into the
   * target, as it goes, so that work on them can start before the fill
   * ends (the verification reads changed Manifests ahead). A hint: a
   * source may say nothing, and nothing may rely on it being complete.
   */
  onWritten?: (paths: string[]) => void;
}

export interface PrecheckContext {
  repo: string;
  cacheDir: string;
  previous: PreviousTree | undefined;
  lockFds: number[];
  /**
   * The tree an update would start from (the current snapshot), to be read
   * and never written. Sources that can only tell "unchanged" by comparing
   * trees compare upstream with it, stopping at the first difference; without
   * it (a plain location, which is itself the target) they do not precheck.
   */
  current?: string;
  /** Progress of a precheck that takes a while (rsync's plan). */
  onProgress?: (p: SourceProgress) => void;
  onToolOutput?: ToolOutputListener;
}

export interface SyncSource {
  /** Its sync-type (see index.ts). */
  readonly type: string;
  readonly uri: string;
  fill(ctx: FillContext): Promise<SourceResult>;
  /**
   * Whether upstream is known to be unchanged since `previous`, found
   * without a target (a git commit id, an HTTP 304, a read-only comparison
   * with the current snapshot): then no staging tree is made at all. It must
   * never say "unchanged" when fill would change something; any doubt is a
   * change, and fill then does the work and reports any error. Where a
   * source can, it returns with a change the plan of what differs, as soon
   * as it sees the first change: the plan may go on growing meanwhile (see
   * SourcePlan.stop).
   */
  precheck?(ctx: PrecheckContext): Promise<PrecheckResult>;
  /**
   * What a sync would change in `current`, entry by entry, found without
   * writing anything (`sync --dry-run`); absent where that cannot be known
   * without fetching (git, tarball).
   */
  preview?(ctx: PreviewContext): Promise<TreeChange[]>;
}

export interface PreviewContext {
  repo: string;
  /** The tree readers see now, read-only. */
  current: string;
}

/** Fail clearly unless `dir`, a source on this machine, is a readable directory. */
export async function requireSourceDir(repo: string, dir: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await fs.stat(dir)).isDirectory();
  } catch (err) {
    const code = errnoCode(err);
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    throw new ReposnapError('ESOURCE', `repo ${repo}: source ${dir} ${why}`);
  }
  if (!isDir) throw new ReposnapError('ESOURCE', `repo ${repo}: source ${dir} is not a directory`);
}

/** A precheck's answer from a yes or no (sources that make no plan). */
export function unchangedIf(unchanged: boolean): PrecheckResult {
  return unchanged ? { unchanged: true } : { unchanged: false };
}
