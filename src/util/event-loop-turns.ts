/**
 * Turns of the event loop for work that is a chain of promises settling at
 * once. Such a chain never gives the event loop a turn: it holds the thread
 * from its first step to its last, and with it every message, timer and
 * signal. With many chains under way at once (one per Manifest being read,
 * say), one of them waiting is not enough: the loop turns only once the
 * last microtask has run, so every chain must wait for the same turn.
 *
 * Each chain asks `due()` at a point it passes often, and waits for what it
 * gets until it gets nothing:
 *
 *     for (let turn = turns.due(); turn !== undefined; turn = turns.due()) await turn;
 *
 * Asking again after the wait matters: thousands of chains may have waited
 * for one turn, and they must not all run on, unbroken, after it.
 */
export class EventLoopTurns {
  private last = performance.now();
  private turn: Promise<void> | undefined;

  /** @param everyMs how long the chains may run between two turns */
  constructor(private readonly everyMs: number) {}

  /** The turn to wait for, if one is due; undefined: go on at once (no microtask spent). */
  due(): Promise<void> | undefined {
    if (this.turn === undefined && performance.now() - this.last >= this.everyMs) {
      this.turn = new Promise((resolve) => {
        setImmediate(() => {
          this.turn = undefined;
          this.last = performance.now();
          resolve();
        });
      });
    }
    return this.turn;
  }
}
