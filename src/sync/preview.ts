/**
 * `sync --dry-run`: what a sync would change, found without writing anything.
 * Sources that can compare upstream with a tree do so against the current
 * one, held by a lease meanwhile (rsync: its plan; local: a walk of both);
 * git and tarball cannot tell what changed without fetching, and say so.
 * Not offered with sync-user: upstream must then be read as that user.
 */
import { ReposnapError } from '../errors.js';
import { createSource } from '../sources/index.js';
import type { TreeChange } from '../tree/diff.js';
import { needsWorker } from './fill.js';
import type { SyncTarget } from './pipeline.js';

export interface SyncPreview {
  repo: string;
  /** "changes": `changes` lists them; "unknown": the source cannot tell without fetching; "first-sync": there is no tree yet. */
  outcome: 'changes' | 'up-to-date' | 'first-sync' | 'unknown';
  changes: TreeChange[];
}

export async function previewSync(repo: SyncTarget): Promise<SyncPreview> {
  const { config, name, storage } = repo;
  if (needsWorker(config)) {
    throw new ReposnapError('EUSAGE', `repo ${name}: sync --dry-run is not offered with sync-user or sync-umask (upstream is read as that user, only by a real sync)`);
  }
  const source = createSource(config);
  if ((await storage.current()) === undefined) return { repo: name, outcome: 'first-sync', changes: [] };
  if (!source.preview) return { repo: name, outcome: 'unknown', changes: [] };
  const preview = source.preview.bind(source);
  const changes = await storage.withReaderView((view) => preview({ repo: name, current: view.path }));
  return { repo: name, outcome: changes.length > 0 ? 'changes' : 'up-to-date', changes };
}
