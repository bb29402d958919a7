/**
 * Which rsync options `sync-rsync-extra-opts` may add: an allow-list.
 *
 * A deny-list cannot be made safe: rsync has well over a hundred options,
 * short options cluster (`-aD`), `--no-OPTION` negates almost anything, and
 * options can hide in other options' values (`--rsync-path`, `-e`). Every
 * one refused here could break a promise: write into a file other
 * snapshots share (`--inplace`, `--append`, and, for metadata, `--checksum`,
 * `--size-only`, `-X`, `-A`, `--atimes`), publish what must not be (`-D`,
 * `--specials`, `--chmod=a+w`, `--chown`, `-L` following upstream's
 * symlinks as root), leave files outside the tree or in it that upstream
 * does not have (`--backup`, `--partial-dir`, `--delay-updates`,
 * `--temp-dir`, `--link-dest`), hide the changes reposnap reads from
 * rsync's output (`-q`, `--info`, `--out-format`, `-h`), make a fill that
 * does nothing look complete (`--dry-run`, `--update`, `--existing`), or add
 * a path to copy (any word that is not an option).
 *
 * What is allowed tunes the transfer (bandwidth, timeouts, compression,
 * addresses, authentication), selects what is mirrored (excludes, filters,
 * size bounds) or adds output; and -a and its parts, which reposnap passes
 * anyway (its --no-D after them undoes -a's -D). reposnap's own options come after the user's,
 * so where rsync lets the last one win, reposnap's safety options do.
 */

/** Long options allowed, and whether each takes a value. */
const LONG: ReadonlyMap<string, boolean> = new Map([
  // The transfer: bandwidth, time, network, compression, authentication.
  ['bwlimit', true],
  ['timeout', true],
  ['contimeout', true],
  ['port', true],
  ['address', true],
  ['sockopts', true],
  ['blocking-io', false],
  ['no-blocking-io', false],
  ['ipv4', false],
  ['ipv6', false],
  ['compress', false],
  ['no-compress', false],
  ['compress-level', true],
  ['zl', true],
  ['compress-choice', true],
  ['zc', true],
  ['skip-compress', true],
  ['checksum-choice', true],
  ['cc', true],
  ['checksum-seed', true],
  ['block-size', true],
  ['whole-file', false],
  ['no-whole-file', false],
  ['sparse', false],
  ['preallocate', false],
  ['protect-args', false],
  ['no-protect-args', false],
  ['secluded-args', false],
  ['password-file', true],
  ['no-motd', false],
  ['max-alloc', true],
  ['no-inc-recursive', false],
  ['no-i-r', false],
  ['open-noatime', false],
  ['numeric-ids', false],
  ['one-file-system', false],
  ['ignore-times', false],
  ['modify-window', true],
  ['fuzzy', false],
  ['partial', false],
  ['force', false],
  ['omit-dir-times', false],
  ['omit-link-times', false],
  // What is mirrored.
  ['exclude', true],
  ['exclude-from', true],
  ['include', true],
  ['include-from', true],
  ['filter', true],
  ['cvs-exclude', false],
  ['delete-excluded', false],
  ['delete-before', false],
  ['delete-during', false],
  ['del', false],
  ['delete-delay', false],
  ['delete-after', false],
  ['prune-empty-dirs', false],
  ['max-size', true],
  ['min-size', true],
  ['max-delete', true],
  ['safe-links', false],
  ['munge-links', false],
  // Output: more of it.
  ['verbose', false],
  ['progress', false],
  ['stats', false],
  ['itemize-changes', false],
  ['8-bit-output', false],
  ['log-file', true],
  ['msgs2stderr', false],
  ['no-msgs2stderr', false],
]);

/** Short options allowed without a value, and with one. */
const SHORT_FLAGS = new Set(['a', 'r', 'l', 'p', 't', 'g', 'o', 'v', 'z', '4', '6', 'W', 'S', 's', '8', 'P', 'C', 'F', 'm', 'I', 'y', 'x', 'O', 'J', 'i']);
const SHORT_WITH_VALUE = new Set(['f', 'B', '@']);

/** Why `args` (already split into words) are refused, or undefined when every one is allowed. */
export function refusedRsyncOptions(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a.startsWith('--')) {
      if (a === '--') return 'rsync option "--" is not allowed (it would make the words after it paths to copy)';
      const eq = a.indexOf('=');
      const name = (eq < 0 ? a.slice(2) : a.slice(2, eq)).toLowerCase();
      const takesValue = LONG.get(name);
      if (takesValue === undefined) return refusal(`--${name}`);
      if (eq >= 0 && !takesValue) return `rsync option --${name} takes no value`;
      if (eq < 0 && takesValue) {
        if (i + 1 >= args.length) return `rsync option --${name} needs a value`;
        i++;
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const c = a[j] as string;
        if (SHORT_FLAGS.has(c)) continue;
        if (SHORT_WITH_VALUE.has(c)) {
          if (j === a.length - 1) {
            if (i + 1 >= args.length) return `rsync option -${c} needs a value`;
            i++;
          }
          break; // the rest of the word is the value
        }
        return refusal(`-${c}${a.length > 2 ? ` (in ${a})` : ''}`);
      }
      continue;
    }
    return `"${a}" is not an rsync option: sync-rsync-extra-opts may not name paths to copy`;
  }
  return undefined;
}

const IN_PLACE = 'writes into existing files, which published snapshots share through hardlinks';
const METADATA = 'changes existing files in place (times or attributes), which older snapshots share';
const SPECIALS = 'would publish devices, FIFOs or sockets, which snapshots never hold';
const FOLLOWS = "follows upstream's symlinks, reading whatever they point at as root";
const OUTPUT = "hides what changed: reposnap reads rsync's itemized output";
const WHY: Record<string, string> = {
  '--inplace': IN_PLACE,
  '--append': IN_PLACE,
  '--append-verify': IN_PLACE,
  '--write-devices': IN_PLACE,
  '--checksum': METADATA,
  '-c': METADATA,
  '--size-only': METADATA,
  '--xattrs': METADATA,
  '-X': METADATA,
  '--acls': METADATA,
  '-A': METADATA,
  '--atimes': METADATA,
  '-U': METADATA,
  '-D': SPECIALS,
  '--devices': SPECIALS,
  '--specials': SPECIALS,
  '--chmod': "sets modes, which are reposnap's to set (never group- or world-writable)",
  '--chown': 'sets owners, which come from upstream',
  '-L': FOLLOWS,
  '--copy-links': FOLLOWS,
  '--copy-unsafe-links': FOLLOWS,
  '-e': 'runs a command of its own: use an ssh:// sync-uri (with a port) instead',
  '--rsh': 'runs a command of its own: use an ssh:// sync-uri (with a port) instead',
  '--rsync-path': 'runs another command as the remote rsync',
  '-q': OUTPUT,
  '--quiet': OUTPUT,
  '--info': OUTPUT,
  '--out-format': OUTPUT,
  '-n': 'changes nothing and would look complete',
  '--dry-run': 'changes nothing and would look complete',
};

function refusal(opt: string): string {
  const key = opt.split(' ')[0] as string;
  const why = WHY[key];
  if (why) return `rsync option ${opt} ${why}; not allowed`;
  return `rsync option ${opt} is not allowed (allowed: options that tune the transfer, select what is mirrored or add output; see the README)`;
}

/**
 * `args` without the options that ask for deletions (--delete-after,
 * --delete-excluded, ...): for an rsync that applies a plan, which deletes
 * only the paths the plan lists (--delete-missing-args) and must not walk
 * the folders it names looking for more. None of them takes a value.
 */
export function withoutDeletions(args: readonly string[]): string[] {
  return args.filter((a) => !/^--del(ete(-[a-z]+)?)?$/i.test(a));
}
