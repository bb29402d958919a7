/**
 * The `local` source: a directory on this machine, mirrored into the target
 * with the tree engine (tree/mirror.ts): compared entry by entry (type,
 * size, mtime, mode and, as root, owner), only what changed copied, what is
 * gone deleted. Upstream may belong to someone else, so it is read through
 * descriptors (tree/source-reader.ts).
 */
import { anchoredReader } from '../tree/source-reader.js';
import { syncTree } from '../tree/mirror.js';
import { treesDiffer } from '../tree/compare.js';
import { failpoint } from '../util/failpoint.js';
import type { SourceKind } from './kind.js';
import { diffTrees, type TreeChange } from '../tree/diff.js';
import { requireSourceDir, unchangedIf, type PrecheckResult, type PreviewContext, type FillContext, type PrecheckContext, type SourceResult, type SyncSource } from './source.js';

/** The local source reads no keys of its own. */
export interface LocalConfig {
  type: 'local';
}

export const localKind: SourceKind<LocalConfig> = {
  type: 'local',
  keys: [],
  checkUri: (uri) => (uri.startsWith('/') ? undefined : `sync-type = local needs a path or file:// URI, got "${uri}"`),
  parse: () => ({ type: 'local' }),
  create: (uri) => new LocalSource(uri),
};

export class LocalSource implements SyncSource {
  readonly type = 'local' as const;
  constructor(readonly uri: string) {}

  /**
   * Compare the source with the current snapshot, read-only, stopping at the
   * first difference: a no-op sync then costs one walk instead of a clone, a
   * walk and a discard, and a sync with changes finds one within a few
   * entries.
   */
  async precheck(ctx: PrecheckContext): Promise<PrecheckResult> {
    if (ctx.current === undefined) return unchangedIf(false);
    return unchangedIf(!(await treesDiffer(this.uri, ctx.current)));
  }

  /** Upstream against the current tree, entry by entry (sync --dry-run). */
  async preview(ctx: PreviewContext): Promise<TreeChange[]> {
    await requireSourceDir(ctx.repo, this.uri);
    return diffTrees(ctx.current, this.uri);
  }

  async fill(ctx: FillContext): Promise<SourceResult> {
    await requireSourceDir(ctx.repo, this.uri);
    await ctx.beginWriting();
    return syncTree(this.uri, ctx.target, {
      repo: ctx.repo,
      excludeTop: ctx.excludeTop,
      link: false,
      // Upstream may belong to someone else: never follow what they can swap.
      reader: anchoredReader,
      midway: () => failpoint('fill-midway'),
      ...(ctx.onProgress ? { onProgress: ctx.onProgress } : {}),
      ...(ctx.onWritten ? { onWritten: (p: string) => ctx.onWritten?.([p]) } : {}),
    });
  }
}
