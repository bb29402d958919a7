/**
 * Layer stacks: the store's side of the overlayfs backend.
 *
 * A snapshot's stack (its own layer on top, then its base's stack) is
 * recorded in its metadata (meta/<N>.json, written atomically and durably
 * before snapshots/<N> exists), so that
 *   - its mount can be brought back after a reboot, before anything reads
 *     it (restoreMounts: at every command that resolves a snapshot, and
 *     `reposnap mount` at boot);
 *   - collection removes a layer only when no snapshot left, no staging
 *     tree and no mount uses it (collectLayers);
 *   - a stack stays bounded: once a snapshot's stack has the most layers
 *     allowed, the next staging sits on one layer holding that snapshot's
 *     whole tree (<N>-flat), made by flattenLatest after the commit, off the
 *     next sync's critical path (or by that sync if it was not made yet).
 *
 * A stack of one layer is mounted on the empty layer too: overlayfs needs
 * two lower layers when there is no upper one.
 */
import fs from 'node:fs/promises';
import { backendByName } from '../backends/select.js';
import type { LayerMounts } from '../backends/backend.js';
import { errnoCode, ReposnapError } from '../errors.js';
import { fsyncDir, lstatOrUndefined, removeTree, syncFilesystem } from '../util/fs.js';
import { isRoot } from '../util/identity.js';
import { isMountPoint, mountPointsUnder, mountsUnder } from '../util/mounts.js';
import { tempName } from '../util/temp-name.js';
import { copyAttributes } from '../tree/attributes.js';
import { flattenLayers, type FlattenStats } from '../tree/flatten.js';
import type { StoreLayout } from './layout.js';
import { readMeta } from './metadata.js';
import { latestId, listSnapshotIds } from './snapshots.js';

export const EMPTY_LAYER = 'empty';

function mounts(): LayerMounts {
  return backendByName('overlayfs').layers as LayerMounts;
}

/** The layer holding snapshot `id`'s whole tree. */
export function flatLayerName(id: number): string {
  return `${id}-flat`;
}

/** A snapshot's layers (top first), or undefined for a snapshot that is a plain folder. */
export async function snapshotLayers(layout: StoreLayout, id: number): Promise<string[] | undefined> {
  const layers = (await readMeta(layout, id))?.layers;
  return layers && layers.length > 0 ? layers : undefined;
}

/** The folders to mount `layers` from, with the empty layer under a stack of one. */
async function layerDirs(layout: StoreLayout, layers: string[]): Promise<string[]> {
  const dirs = layers.map((l) => layout.layer(l));
  if (dirs.length === 1) {
    await fs.mkdir(layout.layer(EMPTY_LAYER), { recursive: true, mode: 0o755 });
    dirs.push(layout.layer(EMPTY_LAYER));
  }
  return dirs;
}

/** Mount snapshot `id` read-only on `layers` at snapshots/<id>, an empty folder. */
export async function mountSnapshot(layout: StoreLayout, id: number, layers: string[]): Promise<void> {
  for (const l of layers) {
    if (!(await lstatOrUndefined(layout.layer(l)))?.isDirectory()) {
      throw new ReposnapError('ESTORE', `store ${layout.storeDir}: snapshot ${id} cannot be mounted: its layer ${l} is missing from ${layout.layersDir}`);
    }
  }
  await mounts().mountReadOnly(layout.snapshot(id), await layerDirs(layout, layers));
}

/** Snapshots recorded as overlays whose folder has nothing mounted on it. */
export async function unmountedSnapshots(layout: StoreLayout): Promise<Array<{ id: number; layers: string[] }>> {
  const ids = await listSnapshotIds(layout);
  const out: Array<{ id: number; layers: string[] }> = [];
  let mounted: Set<string> | undefined;
  for (const id of ids) {
    const layers = await snapshotLayers(layout, id);
    if (!layers) continue;
    mounted ??= await mountPointsUnder(layout.snapshotsDir);
    const real = await fs.realpath(layout.snapshot(id)).catch(() => undefined);
    if (real !== undefined && !mounted.has(real)) out.push({ id, layers });
  }
  return out;
}

export interface RestoreResult {
  /** Snapshots mounted again. */
  mounted: number[];
  /** Snapshots that could not be, and why. */
  failed: Array<{ id: number; error: string }>;
}

/**
 * Bring back the mounts of snapshots that have none (after a reboot, or a
 * commit cut short between its mkdir and its mount). The caller holds the
 * store lock, so collection is not unmounting them meanwhile. Throws when
 * the current snapshot cannot be mounted: a reader would see an empty tree.
 */
export async function restoreMounts(layout: StoreLayout, repo: string): Promise<RestoreResult> {
  const result: RestoreResult = { mounted: [], failed: [] };
  const missing = await unmountedSnapshots(layout);
  if (missing.length === 0) return result;
  const latest = await latestId(layout);
  if (!isRoot) {
    const current = missing.some((m) => m.id === latest);
    if (!current) return result;
    throw new ReposnapError('ESTORE', `repo ${repo}: snapshot ${latest} is not mounted (the machine restarted?); run \`reposnap mount\` as root`);
  }
  for (const { id, layers } of missing) {
    try {
      await mountSnapshot(layout, id, layers);
      result.mounted.push(id);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      if (id === latest) throw new ReposnapError('ESTORE', `repo ${repo}: the current snapshot ${id} cannot be mounted: ${error}`);
      result.failed.push({ id, error });
    }
  }
  return result;
}

/**
 * The lower layers of a new staging overlay on snapshot `base`: its stack,
 * or its flattened tree when the stack has `maxLayers` layers already.
 * Undefined when the base is a plain folder (another backend's snapshot):
 * then staging is a linked clone, published as a bottom layer.
 */
export async function stagingLower(layout: StoreLayout, base: number, maxLayers: number): Promise<string[] | undefined> {
  const layers = await snapshotLayers(layout, base);
  if (!layers) return undefined;
  if (layers.length < maxLayers) return layers;
  await flattenSnapshot(layout, base, layers);
  return [flatLayerName(base)];
}

/**
 * Make layers/<id>-flat, snapshot `id`'s whole tree in one layer, unless it
 * is there. Built under a temporary name, made durable, then renamed: a
 * flat layer that exists is complete. Returns what it cost, or undefined
 * when it existed.
 */
export async function flattenSnapshot(layout: StoreLayout, id: number, layers: string[]): Promise<(FlattenStats & { ms: number }) | undefined> {
  const name = flatLayerName(id);
  if (await lstatOrUndefined(layout.layer(name))) return undefined;
  // The merged view is what is flattened: an unmounted folder is empty.
  if (!(await isMountPoint(layout.snapshot(id)))) throw new ReposnapError('ESTORE', `store ${layout.storeDir}: snapshot ${id} is not mounted, so it cannot be flattened`);
  const t0 = performance.now();
  const tmp = tempName(layout.layer(name), 'flat');
  try {
    const stats = await flattenLayers(layout.snapshot(id), layers.map((l) => layout.layer(l)), tmp);
    await syncFilesystem(tmp);
    await fs.rename(tmp, layout.layer(name));
    await fsyncDir(layout.layersDir);
    return { ...stats, ms: performance.now() - t0 };
  } catch (err) {
    await removeTree(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Open a staging overlay at `dir` on `lower`: its upper layer and work
 * folder in `layerDir`. The upper layer's top folder is the merged tree's,
 * so it starts with the base's top folder's mode, owner and times.
 */
export async function mountStaging(layout: StoreLayout, dir: string, layerDir: string, lower: string[], fresh: boolean): Promise<void> {
  const upper = `${layerDir}/upper`;
  const work = `${layerDir}/work`;
  if (fresh) {
    await fs.mkdir(dir, { mode: 0o755 });
    await fs.mkdir(layerDir, { mode: 0o700 });
    await fs.mkdir(upper, { mode: 0o755 });
    await fs.mkdir(work, { mode: 0o700 });
    await copyAttributes(upper, await fs.lstat(layout.layer(lower[0] as string)));
  }
  await mounts().mountWritable(dir, await layerDirs(layout, lower), upper, work);
}

/** Whether a staging overlay's folders and lower layers are all there, for it to be mounted again. */
export async function stagingIntact(layout: StoreLayout, dir: string, layerDir: string, lower: string[]): Promise<boolean> {
  for (const p of [dir, `${layerDir}/upper`, `${layerDir}/work`, ...lower.map((l) => layout.layer(l))]) {
    if (!(await lstatOrUndefined(p))?.isDirectory()) return false;
  }
  return true;
}

/**
 * Remove layers nothing uses: not a snapshot's stack (snapshots/ and
 * metadata), not a staging tree's lower layers, not a mount under the
 * store, and not the flattened tree of the current snapshot (the next
 * staging's, possibly being set up). The caller holds the store lock.
 * Returns the names removed.
 */
export async function collectLayers(layout: StoreLayout, stagingLayers: string[][]): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(layout.layersDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
  const used = new Set<string>([EMPTY_LAYER, ...stagingLayers.flat()]);
  for (const id of await listSnapshotIds(layout)) for (const l of (await snapshotLayers(layout, id)) ?? []) used.add(l);
  const latest = await latestId(layout);
  if (latest !== undefined) used.add(flatLayerName(latest));
  // A mount's own word, in case a record was lost: lowerdir names layers relative to layers/.
  for (const m of await mountsUnder(layout.storeDir)) {
    if (m.fsType !== 'overlay') continue;
    const lower = /(?:^|,)lowerdir=([^,]*)/.exec(m.superOptions)?.[1];
    for (const l of lower?.split(':') ?? []) if (l) used.add(l);
  }
  const removed: string[] = [];
  for (const n of names) {
    // Temporaries (a flattening in progress) are swept by their writer's pid.
    if (n.startsWith('.') || used.has(n)) continue;
    await removeTree(layout.layer(n));
    removed.push(n);
  }
  if (removed.length > 0) await fsyncDir(layout.layersDir);
  return removed;
}
