/**
 * Progress on a terminal: one line per repository at work, redrawn in place
 * below whatever was printed, at most ten times a second. A line that would
 * wrap is cut at the terminal's width (a wrapped line would throw the
 * redrawing off). Output decides whether there is a board at all (a
 * terminal, not --quiet, not --json, not the journal).
 */
export class ProgressBoard {
  private readonly lines = new Map<string, string>();
  /** How many lines are on the screen now (the cursor is at the end of the last). */
  private shown = 0;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tty: NodeJS.WriteStream) {}

  /**
   * Set `key`'s line; `now`: draw at once (a new phase), otherwise within a
   * tenth of a second. What was waiting to be drawn is drawn before a new
   * phase replaces it: each phase's last word is seen.
   */
  set(key: string, line: string, now = false): void {
    if (now && this.timer) this.redraw();
    this.lines.set(key, line);
    this.schedule(now);
  }

  /** `key` is done: its line goes. */
  remove(key: string): void {
    if (!this.lines.delete(key)) return;
    this.schedule(true);
  }

  /** Take the board off the screen (before a line is printed above it). */
  clear(): void {
    if (this.shown === 0) return;
    let s = '\r\x1b[K';
    for (let i = 1; i < this.shown; i++) s += '\x1b[1A\r\x1b[K';
    this.tty.write(s);
    this.shown = 0;
  }

  /** Draw it again (after a line was printed above it). */
  redraw(): void {
    this.clear();
    if (this.lines.size === 0) return;
    const width = Math.max(20, (this.tty.columns || 80) - 1);
    this.tty.write([...this.lines.values()].map((l) => l.slice(0, width)).join('\n'));
    this.shown = this.lines.size;
    this.lastDraw = Date.now();
  }

  /** Stop drawing and leave the screen as it was before the board. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.lines.clear();
    this.clear();
  }

  private schedule(now: boolean): void {
    const wait = 100 - (Date.now() - this.lastDraw);
    if (now || wait <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.redraw();
      return;
    }
    // The last state is drawn too, even when nothing comes after it.
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.redraw();
    }, wait).unref();
  }
}
