/**
 * Reading a tree's inodes into the kernel's cache ahead of a tool that
 * walks it one inode at a time.
 *
 * rsync's dry run compares every file of the current snapshot with
 * upstream's, one lstat after another. When the caches are warm that costs
 * a few microseconds a file; after hours without a sync (a timer's usual
 * case) most of the snapshot's inodes have been evicted, each lstat waits
 * for the disk, and the walk is most of the sync. Disks (and the virtual
 * disks of cloud machines) serve many reads in flight far better than one:
 * a Gentoo-sized tree (121k files, 26k folders) took 4.6 s to walk cold
 * with one `find`, 2.8 s with four beside each other and 2.5 s with eight;
 * a cold 0.1% sync went from 6.0-6.9 s to 3.8-4.2 s with eight walkers
 * beside its dry run (see docs/design.md).
 *
 * So, when a quick probe finds the tree's inodes out of the cache, `find`
 * processes (lanes, at most LANES in the whole process) walk it beside the
 * tool, folder by folder, stat'ing every entry and printing only the
 * sub-folders (on the root's filesystem), which go back on the queue: the
 * work is shared out evenly whatever the tree's shape. On a warm cache
 * nothing is started: the walkers would only take CPU from the tool.
 *
 * It only reads, and is best effort: a folder it cannot read, a name it
 * cannot pass as an argument, `find` missing, are passed over. Its walkers
 * are children like any other (util/process.ts): an aborted sync or an
 * interrupted reposnap stops them, and `stop()` ends them and waits.
 *
 * REPOSNAP_READ_AHEAD: `auto` (the default: probe), `always`, `never`.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { abortSignal } from '../util/abort.js';
import { runProcess, type ProcessHandle } from '../util/process.js';

export type ReadAheadMode = 'auto' | 'always' | 'never';

export interface ReadAheadOptions {
  /** Default: REPOSNAP_READ_AHEAD, else auto. */
  mode?: ReadAheadMode;
  /** Walkers at once; default LANES. */
  lanes?: number;
  /** The find binary (for tests). */
  find?: string;
}

export interface ReadAhead {
  /** Whether walkers were started (the probe, on the next turn of the event loop, found a cold cache; or `always`). */
  readonly started: boolean;
  /** Folders walked so far. */
  readonly folders: number;
  /** Resolves when every walker has ended (the tree walked, or stopped). */
  readonly done: Promise<void>;
  /** Stop the walkers; resolves once none is left. */
  stop(): Promise<void>;
}

/** Walkers at once, in the whole process: 2.5 s with eight, 2.8 s with four, 4.6 s with one (above). */
const LANES = 8;
/** Folders one walker is given at most. */
const FOLDERS_PER_WALKER = 256;
/** Entries the probe looks at. */
const PROBE_ENTRIES = 48;
/** A probe that read this much from storage found the tree's inodes evicted (two of ext4's inode-table read-aheads). */
const COLD_READ_BYTES = 256 * 1024;
/** A probe slower than this on average per entry (ms) waited for a network round trip or a disk. */
const SLOW_ENTRY_MS = 0.2;

/** REPOSNAP_READ_AHEAD, or `auto` for anything else. */
export function readAheadMode(): ReadAheadMode {
  const v = process.env.REPOSNAP_READ_AHEAD;
  return v === 'always' || v === 'never' ? v : 'auto';
}

/**
 * Start reading `root`'s inodes ahead, if the cache looks cold (see the top
 * of this file). The probe runs on the next turn of the event loop, so that
 * the tool the walkers go beside (spawned just before) is not kept waiting.
 */
export function readAhead(root: string, opts: ReadAheadOptions = {}): ReadAhead {
  const mode = opts.mode ?? readAheadMode();
  if (mode === 'never') return NOTHING;
  return new Walkers(path.resolve(root), mode, opts.lanes ?? LANES, opts.find ?? 'find');
}

const NOTHING: ReadAhead = { started: false, folders: 0, done: Promise.resolve(), stop: () => Promise.resolve() };

/**
 * Whether `root`'s inodes look out of the cache: the lstat of a few entries
 * spread over its folders (listing a folder reads its names, not its
 * entries' inodes). What tells is whether they had to be read from the
 * disk: the bytes this process read from storage meanwhile
 * (/proc/self/io), which is 0 on a warm cache and hundreds of KiB on a
 * cold one (ext4 reads inode tables ahead, 128 KiB at a time). Where the
 * kernel does not count them, or a filesystem reads nothing from a block
 * device (NFS, FUSE), the time they took: a cached lstat takes
 * microseconds, one that crosses the network a fraction of a millisecond.
 */
export function looksCold(root: string): boolean {
  let entries = 0;
  let waited = 0;
  const readBefore = bytesRead();
  try {
    const tops = readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory());
    const picks = spread(tops, 8);
    for (const top of picks) {
      const dir = `${root}/${top.name}`;
      for (const name of spread(readdirSync(dir), Math.ceil(PROBE_ENTRIES / picks.length))) {
        // Only the stats are timed: a listing's cost grows with the folder.
        const start = performance.now();
        lstatSync(`${dir}/${name}`, { throwIfNoEntry: false });
        waited += performance.now() - start;
        entries++;
      }
    }
  } catch {
    return false; // best effort: a tree the probe cannot read is left to the tool
  }
  if (entries === 0) return false;
  const read = readBefore === undefined ? undefined : (bytesRead() ?? readBefore) - readBefore;
  return (read !== undefined && read >= COLD_READ_BYTES) || waited / entries > SLOW_ENTRY_MS;
}

/** What this process has read from storage (/proc/self/io's read_bytes), where the kernel counts it. */
function bytesRead(): number | undefined {
  try {
    const m = /^read_bytes: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Up to `n` of `items`, evenly spaced. */
function spread<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)] as T);
}

/** Walkers running in this process, of every read-ahead: a sync of many repos at once starts no more than LANES. */
let walkersRunning = 0;
/** Read-aheads that may wait for a lane. */
const waitingForLanes = new Set<Walkers>();

class Walkers implements ReadAhead {
  started = false;
  folders = 0;
  readonly done: Promise<void>;
  private readonly queue: string[];
  private readonly running = new Set<ProcessHandle>();
  private active = 0;
  private stopped = false;
  /** st_dev of the root: a folder on another filesystem (a mount inside the tree) is not walked. */
  private device = -1;
  private readonly begin: NodeJS.Immediate;
  private finished!: () => void;

  constructor(
    private readonly root: string,
    private readonly mode: ReadAheadMode,
    private readonly lanes: number,
    private readonly find: string,
  ) {
    this.queue = [root];
    this.done = new Promise((resolve) => {
      this.finished = resolve;
    });
    this.begin = setImmediate(() => {
      if (this.mode === 'auto' && !looksCold(this.root)) this.stopped = true;
      else {
        this.device = lstatSync(this.root, { throwIfNoEntry: false })?.dev ?? -1;
        this.started = this.device !== -1;
        if (!this.started) this.stopped = true;
      }
      this.fill();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearImmediate(this.begin);
    this.queue.length = 0;
    for (const h of this.running) h.stop('SIGKILL');
    if (this.active === 0) this.finish();
    await this.done;
  }

  private finish(): void {
    waitingForLanes.delete(this);
    this.finished();
  }

  /** Start walkers while there are lanes and folders; each takes a fair share of the queue. */
  fill(): void {
    while (!this.stopped && this.active < this.lanes && walkersRunning < LANES && this.queue.length > 0) {
      // A child started after an abort is not stopped (util/abort.ts): start none.
      if (abortSignal()?.aborted) {
        this.stopped = true;
        break;
      }
      const share = Math.min(FOLDERS_PER_WALKER, Math.ceil(this.queue.length / (this.lanes - this.active)));
      this.walk(this.queue.splice(this.queue.length - share, share));
    }
    if (this.active > 0 || (!this.stopped && this.queue.length > 0)) waitingForLanes.add(this);
    else this.finish();
  }

  /**
   * One walker over `dirs`: every entry stat'ed (`-size -0c`, never true,
   * needs the inode), sub-folders printed with their filesystem's device.
   */
  private walk(dirs: string[]): void {
    this.active++;
    walkersRunning++;
    this.folders += dirs.length;
    // Every path is absolute: none can be read as an option or an expression.
    const args = ['-P', ...dirs, '-mindepth', '1', '-maxdepth', '1', '(', '-type', 'd', '-printf', '%D %p\\0', ')', '-o', '-size', '-0c'];
    let handle: ProcessHandle | undefined;
    const spawned = (h: ProcessHandle): void => {
      handle = h;
      this.running.add(h);
      // Stopped (or aborted) while it was being started: it goes at once.
      if (this.stopped || abortSignal()?.aborted) h.stop('SIGKILL');
    };
    // With a parent-death signal: an interrupted reposnap leaves no walker behind.
    runProcess(this.find, args, { dieWithUs: 'KILL', onSpawn: spawned })
      .then(
        (end) => {
          // A walker killed from outside (a stop of the whole service, say) may have been cut mid-path.
          if (this.stopped || end.signal !== null) return;
          const printed = end.stdout.toString('utf8').split('\0');
          printed.pop(); // what follows the last NUL: nothing, for a walker that ended
          for (const line of printed) {
            const space = line.indexOf(' ');
            const p = line.slice(space + 1);
            // Only what went back through UTF-8 unchanged can be passed as an argument.
            if (space > 0 && Number(line.slice(0, space)) === this.device && p.startsWith('/') && !p.includes('\uFFFD')) this.queue.push(p);
          }
        },
        () => {
          // find missing or not started: read-ahead is best effort.
          this.stopped = true;
        },
      )
      .finally(() => {
        this.active--;
        walkersRunning--;
        if (handle) this.running.delete(handle);
        // A lane is free: this read-ahead, or another waiting for one, takes it.
        this.fill();
        for (const other of waitingForLanes) if (other !== this) other.fill();
      });
  }
}
