/**
 * What a tree being updated was made from: the contract between a storage,
 * which knows what its target holds, and a source, which must not take a
 * short cut on a target that is not what it believes.
 */
/** What the tree being updated was made from. */
export interface PreviousTree {
  revision?: string;
  state?: Record<string, string>;
  /**
   * True when the target is known to be exactly the tree of `revision` (an
   * RCU staging clone of the snapshot made from it), possibly with part of an
   * interrupted update toward the same upstream applied; false when it may
   * have drifted (a plain location anyone can write to) or holds part of an
   * earlier update (a resumed staging tree, see `toward`).
   */
  exact: boolean;
  /**
   * Set when the target is the tree of `revision` plus some of the writes
   * toward this revision and nothing else (an interrupted fill heading
   * there): redoing the same update from `revision` is safe, an update
   * toward any other revision must treat the target as inexact.
   */
  toward?: string;
}
