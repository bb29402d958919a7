/**
 * How a snapshot is cloned into a staging directory and frozen. Sealing
 * (syncfs) and removal (removeTree, which knows btrfs subvolumes) are the
 * same for every backend and live with the commit and the collection.
 * One small interface so that cheaper copy-on-write methods (reflink, btrfs
 * subvolumes) can sit beside hardlinks and plain copies.
 */
import type { CloneStats } from '../tree/clone.js';

export type ConcreteBackendName = 'btrfs' | 'reflink' | 'hardlink' | 'copy' | 'overlayfs';

/**
 * A backend whose snapshots are stacks of layers (overlayfs): a snapshot is
 * a read-only mount of its layers, staging a writable mount whose upper
 * layer becomes the next snapshot's own. Paths are absolute; the store says
 * which folders are layers (store/layers.ts).
 */
export interface LayerMounts {
  /** Mount `at` writable on `lower` (top first), writing into `upper` (with `work`, an empty folder beside it). */
  mountWritable(at: string, lower: string[], upper: string, work: string): Promise<void>;
  /** Mount `at` read-only on `layers` (top first; at least two). */
  mountReadOnly(at: string, layers: string[]): Promise<void>;
  /** Unmount `at`; with `lazy`, a busy mount is detached and goes when its last user does. */
  unmount(at: string, opts?: { lazy?: boolean }): Promise<void>;
}

export interface SnapshotBackend {
  readonly name: ConcreteBackendName;
  /**
   * Whether a clone shares its files' and symlinks' inodes with the tree it
   * was cloned from (hardlinks): then a fill must never change one in place,
   * not even its attributes (FillContext.sharesInodes).
   */
  readonly sharesInodes: boolean;
  /**
   * Whether this backend works for a store at `storeDir` (which exists): true,
   * or false or why not.
   */
  probe(storeDir: string): Promise<boolean | string>;
  /** Make `to` (which must not exist) a writable clone of the tree `from`. */
  clone(from: string, to: string, onEntry?: (s: CloneStats) => void): Promise<CloneStats>;
  /**
   * Make a clone prepared ahead of time cheap to write into (optional). Runs
   * off the critical path, after the previous update became visible.
   */
  warm?(dir: string): Promise<void>;
  /** Make `to` an empty writable tree. */
  createEmpty(to: string): Promise<void>;
  /**
   * Make a snapshot immutable, once it is in snapshots/ and before `latest`
   * points at it (btrfs: a read-only subvolume cannot be moved between
   * directories, so this comes after the rename).
   */
  freeze?(dir: string): Promise<void>;
  /**
   * Snapshots as stacks of layers (overlayfs). Such a backend's `clone` and
   * `createEmpty` make the plain trees that become a stack's bottom layer:
   * the first snapshot, a migrated location, a snapshot another backend made.
   */
  readonly layers?: LayerMounts;
}
