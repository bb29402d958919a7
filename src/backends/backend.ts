/**
 * How a snapshot is cloned into a staging directory and frozen. Sealing
 * (syncfs) and removal (removeTree, which knows btrfs subvolumes) are the
 * same for every backend and live with the commit and the collection.
 * One small interface so that cheaper copy-on-write methods (reflink, btrfs
 * subvolumes) can sit beside hardlinks and plain copies.
 */
import type { CloneStats } from '../tree/clone.js';

export type ConcreteBackendName = 'btrfs' | 'reflink' | 'hardlink' | 'copy';

export interface SnapshotBackend {
  readonly name: ConcreteBackendName;
  /**
   * Whether a clone shares its files' and symlinks' inodes with the tree it
   * was cloned from (hardlinks): then a fill must never change one in place,
   * not even its attributes (FillContext.sharesInodes).
   */
  readonly sharesInodes: boolean;
  /** Whether this backend works for a store at `storeDir` (which exists). */
  probe(storeDir: string): Promise<boolean>;
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
}
