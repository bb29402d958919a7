/**
 * The on-disk layout of an RCU store. Compatible with Portage's sync-rcu:
 *
 *   <store>/snapshots/<N>/      immutable trees, N = 1, 2, 3...
 *   <store>/latest              relative symlink "snapshots/<N>"
 *   <location>                  symlink to "<store>/latest"
 *
 * Everything of reposnap's own lives under <store>/reposnap/, never inside
 * snapshots/ (Portage parses every name there as an integer) and never at
 * <store>/update (Portage wipes that at the start of each of its syncs):
 *
 *   reposnap/sync.lock          held for a whole update of this repo
 *   reposnap/store.lock         held to commit, collect or change the layout
 *   reposnap/last-id            highest snapshot id ever assigned
 *   reposnap/owner.json         the repository and location the store belongs to
 *   reposnap/meta/<N>.json      metadata of snapshot N
 *   reposnap/meta/<N>.folders.json  the folders of snapshot N as its verification saw them
 *   reposnap/staging/<tx>/      the tree a transaction is building
 *   reposnap/staging/<tx>.lock  held by the transaction that owns <tx>/
 *   reposnap/staging/<tx>.json  what <tx>/ was cloned from
 *   reposnap/staging/<tx>.scratch/  the transaction's own files (a download)
 *   reposnap/cache/             source caches kept between syncs (git mirror)
 *   reposnap/trash/             snapshots moved out of sight, being deleted
 *   reposnap/leases/<N>.lock    readers of snapshot N hold a shared lock here
 *
 * With the overlayfs backend, snapshots/<N> is a read-only overlay mount of
 * layers kept here (the stack is in meta/<N>.json):
 *
 *   reposnap/layers/<N>/        snapshot N's own layer (its staging's upper layer)
 *   reposnap/layers/<N>-flat/   snapshot N's whole tree in one layer (a deep stack flattened)
 *   reposnap/layers/empty/      the empty layer under a stack of one (overlayfs needs two)
 *   reposnap/staging/<tx>.layer/upper, work   a staging overlay's upper layer
 */
import path from 'node:path';

export class StoreLayout {
  constructor(
    readonly storeDir: string,
    readonly location: string,
  ) {}

  get snapshotsDir(): string {
    return path.join(this.storeDir, 'snapshots');
  }
  get latest(): string {
    return path.join(this.storeDir, 'latest');
  }
  get ownDir(): string {
    return path.join(this.storeDir, 'reposnap');
  }
  get syncLock(): string {
    return path.join(this.ownDir, 'sync.lock');
  }
  get storeLock(): string {
    return path.join(this.ownDir, 'store.lock');
  }
  get lastIdFile(): string {
    return path.join(this.ownDir, 'last-id');
  }
  get metaDir(): string {
    return path.join(this.ownDir, 'meta');
  }
  get stagingDir(): string {
    return path.join(this.ownDir, 'staging');
  }
  get trashDir(): string {
    return path.join(this.ownDir, 'trash');
  }

  /** Source caches kept between syncs (the git mirror). */
  get cacheDir(): string {
    return path.join(this.ownDir, 'cache');
  }
  get layersDir(): string {
    return path.join(this.ownDir, 'layers');
  }
  layer(name: string): string {
    return path.join(this.layersDir, name);
  }
  /** A staging overlay's upper layer and work folder live here. */
  stagingLayer(tx: string): string {
    return path.join(this.stagingDir, `${tx}.layer`);
  }
  stagingScratch(tx: string): string {
    return path.join(this.stagingDir, `${tx}.scratch`);
  }

  /** One empty file per pinned snapshot (see pins.ts). */
  get pinsDir(): string {
    return path.join(this.ownDir, 'pins');
  }
  pin(id: number): string {
    return path.join(this.pinsDir, String(id));
  }
  /** What the last rollback did, until the next commit (see rollback.ts). */
  get rollbackRecord(): string {
    return path.join(this.ownDir, 'rollback.json');
  }

  get leasesDir(): string {
    return path.join(this.ownDir, 'leases');
  }
  lease(id: number): string {
    return path.join(this.leasesDir, `${id}.lock`);
  }

  snapshot(id: number): string {
    return path.join(this.snapshotsDir, String(id));
  }
  /** What `latest` says when it points at snapshot `id`. */
  latestTarget(id: number): string {
    return `snapshots/${id}`;
  }
  meta(id: number): string {
    return path.join(this.metaDir, `${id}.json`);
  }
  /** Snapshot `id`'s folder index (verification's, opaque to the store). */
  folderIndex(id: number): string {
    return path.join(this.metaDir, `${id}.folders.json`);
  }
  staging(tx: string): string {
    return path.join(this.stagingDir, tx);
  }
  stagingLock(tx: string): string {
    return path.join(this.stagingDir, `${tx}.lock`);
  }
  stagingInfo(tx: string): string {
    return path.join(this.stagingDir, `${tx}.json`);
  }
  /** Where a migrated directory waits to be removed, beside the location. */
  get locationAside(): string {
    return path.join(path.dirname(this.location), `.${path.basename(this.location)}.reposnap-old`);
  }
}

/**
 * The highest snapshot id reposnap assigns or accepts: a million syncs a
 * day for two thousand years fit, and every id stays exact in a double
 * (ids near 2^53 would round, and such a snapshot could never be found to
 * collect).
 */
export const MAX_SNAPSHOT_ID = 1e12;

/** Snapshot ids are positive decimal integers without leading zeros, up to MAX_SNAPSHOT_ID. */
export function parseSnapshotId(name: string): number | undefined {
  if (!/^[1-9]\d{0,12}$/.test(name)) return undefined;
  const n = Number(name);
  return n <= MAX_SNAPSHOT_ID ? n : undefined;
}

/** Parse `latest`'s target ("snapshots/N", or an absolute path ending so). */
export function parseLatestTarget(target: string): number | undefined {
  const m = /(?:^|\/)snapshots\/([^/]+)\/?$/.exec(target);
  return m ? parseSnapshotId(m[1] as string) : undefined;
}
