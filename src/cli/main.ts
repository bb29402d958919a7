#!/usr/bin/env node
/**
 * The reposnap command line. Each command lives in its own file and is a thin
 * layer over the library; this file wires them up and maps failures to exit
 * statuses: 0 ok, 1 failed, 2 usage or configuration error, 75 busy.
 */
// First: V8's settings for a short-lived process, before any other code runs.
import './v8-tuning.js';
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_FAILURE, EXIT_USAGE, ReposnapError } from '../errors.js';
import { makeContext, type CommandContext, type GlobalOptions } from './context.js';
import { checkCommand } from './check.js';
import { diffCommand } from './diff.js';
import { listCommand } from './list.js';
import { execCommand } from './exec.js';
import { gcCommand } from './gc.js';
import { migrateCommand } from './migrate.js';
import { mountCommand } from './mount.js';
import { revertCommand } from './revert.js';
import { pinCommand, rollbackCommand } from './rollback.js';
import { installStopHandlers } from './signals.js';
import { writeStderr } from './log.js';
import { Output } from './output.js';
import { pathCommand } from './path.js';
import { stampRun, stampShow, stampTouch } from './stamp.js';
import { statusCommand } from './status.js';
import { syncCommand } from './sync.js';
import { verifyCommand } from './verify.js';

export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Commander's usage errors, as one line of ours (with the journal's priority where that is stderr). */
const REPORT_ERRORS = { outputError: (str: string) => writeStderr('error', `reposnap: ${str.replace(/^error: /, '')}`) };

function configOption(): Option {
  return new Option('-c, --config <path>', 'repos.conf file or directory (default: $REPOSNAP_CONFIG, /etc/reposnap/repos.conf, /etc/portage/repos.conf)');
}

function quietOption(): Option {
  return new Option('-q, --quiet', 'print nothing but errors and warnings');
}

function verboseOption(): Option {
  return new Option('-v, --verbose', "show the output of the tools a sync runs (rsync's itemized changes, git's fetch) on stderr");
}

function logFileOption(): Option {
  return new Option('--log-file <path>', "append what happens to PATH, timestamped: a line per repo's result, warnings, errors, hooks' output (with -v the tools' output too)");
}

function jsonOption(): Option {
  return new Option('--json', 'print the result, or the error, as one JSON document on stdout: {"version":1,"command":...,"results"|"error":...}');
}

/** Every option that every command takes too, before or after its name. */
function globalOptions(): Option[] {
  return [configOption(), quietOption(), verboseOption(), logFileOption(), jsonOption()];
}

/** The command's name on a command line (with stamp's subcommand), as far as it can be told before parsing: for errors in JSON. */
function commandOf(argv: string[], commands: readonly Command[]): string | null {
  const words: string[] = [];
  for (let i = 2; i < argv.length && words.length < 2; i++) {
    const a = argv[i] as string;
    if (a === '--') break;
    if (a === '-c' || a === '--config' || a === '--log-file') i++;
    else if (!a.startsWith('-')) words.push(a);
  }
  const cmd = commands.find((c) => c.name() === words[0]);
  if (!cmd) return null;
  const sub = cmd.commands.find((c) => c.name() === words[1]);
  return sub ? `${cmd.name()} ${sub.name()}` : cmd.name();
}

/** Whether --json is on the command line, before any `--` (what follows that is a command's own). */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return argv.slice(2, end < 0 ? undefined : end).includes('--json');
}

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command();
  // Global options may come before the command or after it (`reposnap
  // status gentoo -c FILE`): each command takes them too, and the one
  // running sees both, its own winning.
  let running: Command | undefined;
  program.hook('preAction', (_program, action) => {
    running = action;
  });
  const globals = (): GlobalOptions => (running ?? program).optsWithGlobals<GlobalOptions>();
  /**
   * Run `command` in its context; a failure of the command as a whole is
   * reported here (on stderr, and as the error envelope with --json), with
   * `repo` when the command is about one.
   */
  const run = (command: string, fn: (ctx: CommandContext) => Promise<number>, repo?: string) => async () => {
    let ctx: CommandContext | undefined;
    try {
      ctx = makeContext(globals(), command);
      exitCode = await fn(ctx);
    } catch (err) {
      (ctx?.out ?? new Output({ json: globals().json === true, quiet: false, command })).fail(err, repo);
      exitCode = err instanceof ReposnapError ? err.exitCode : EXIT_FAILURE;
    } finally {
      ctx?.out.close();
    }
  };

  program
    .name('reposnap')
    .description('Keep local copies of repository trees up to date with read-copy-update snapshots.')
    .version(VERSION, '-V, --version', 'print the version')
    .showSuggestionAfterError()
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput(REPORT_ERRORS);
  for (const o of globalOptions()) program.addOption(o);

  program
    .command('sync')
    .description('bring repositories up to date (no names: every repo with auto-sync = yes)')
    .argument('[repo...]', 'repositories to sync')
    .option('--no-wait', `fail with exit status 75 instead of waiting when another process is updating a repo`)
    .option('--allow-older', 'accept a tree older than the current one (rollback protection off for this sync)')
    .option('-n, --dry-run', 'say what each sync would change (+ added, - removed, ~ changed), writing nothing')
    .action((names: string[], o: { wait: boolean; allowOlder?: boolean; dryRun?: boolean }) =>
      run('sync', (ctx) => syncCommand(ctx, names, { wait: o.wait, allowOlder: o.allowOlder === true, dryRun: o.dryRun === true, json: globals().json === true }))(),
    );

  program
    .command('verify')
    .description('check the current snapshot against its MetaManifest (exit 1 on any mismatch)')
    .argument('<repo>', 'repository')
    .option('--full', 'hash every file (default: the signature, every file present and of its size, and the hashes of what changed since the snapshot was published)')
    .action((name: string, o: { full?: boolean }) => run('verify', (ctx) => verifyCommand(ctx, name, { full: o.full === true, json: globals().json === true }), name)());

  program
    .command('check')
    .description('check the configuration (exit 2) and what each repo needs here: tools, folders, filesystem, backend (exit 1 on a problem)')
    .argument('[repo...]', 'repositories to check (default: all)')
    .action((names: string[]) => run('check', (ctx) => checkCommand(ctx, names, { json: globals().json === true }))());

  program
    .command('list')
    .description('one line per repository: mode, backend, current snapshot, when a sync last ended well')
    .action(() => run('list', (ctx) => listCommand(ctx, { json: globals().json === true }))());

  program
    .command('status')
    .description('show the snapshots, staging and state of repositories')
    .argument('[repo...]', 'repositories to show (default: all)')
    .action((names: string[]) => run('status', (ctx) => statusCommand(ctx, names, { json: globals().json === true }))());

  program
    .command('path')
    .description('print the canonical path of the current snapshot: the path a reader should use')
    .argument('<repo>', 'repository')
    .action((name: string) => run('path', (ctx) => pathCommand(ctx, name, { json: globals().json === true }), name)());

  program
    .command('diff')
    .description('show what changed between two kept snapshots: + added, - removed, ~ changed (default: the previous and the current; one id: it and the current)')
    .argument('<repo>', 'repository')
    .argument('[ids...]', 'the older and the newer snapshot id')
    .action((name: string, ids: string[]) => run('diff', (ctx) => diffCommand(ctx, name, ids, { json: globals().json === true }), name)());

  program
    .command('exec')
    .description('run a command while holding a lease on the current snapshot (REPOSNAP_SNAPSHOT, REPOSNAP_SNAPSHOT_ID in its environment)')
    .argument('<repo>', 'repository')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .passThroughOptions()
    .action((name: string, argv: string[]) => run('exec', (ctx) => execCommand(ctx, name, argv), name)());

  program
    .command('gc')
    .description('collect old snapshots now, saying for each why it is kept or that it goes')
    .argument('[repo...]', 'repositories (default: every RCU repository)')
    .option('-n, --dry-run', 'only say what would be collected')
    .action((names: string[], o: { dryRun?: boolean }) => run('gc', (ctx) => gcCommand(ctx, names, { dryRun: o.dryRun === true, json: globals().json === true }))());

  program
    .command('revert')
    .description('turn the location back into a plain directory with the current content and remove the store')
    .argument('<repo>', 'repository')
    .option('-f, --force', 'revert even while readers hold leases (they lose their snapshot)')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .action((name: string, o: { force?: boolean; wait: boolean }) =>
      run('revert', (ctx) => revertCommand(ctx, name, { force: o.force === true, wait: o.wait, json: globals().json === true }), name)(),
    );

  program
    .command('rollback')
    .description('make an older kept snapshot current, atomically (default: the one before the current); the next sync brings upstream back')
    .argument('<repo>', 'repository')
    .argument('[id]', 'the snapshot to make current')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .action((name: string, id: string | undefined, o: { wait: boolean }) =>
      run('rollback', (ctx) => rollbackCommand(ctx, name, id, { wait: o.wait, json: globals().json === true }), name)(),
    );

  for (const pinned of [true, false]) {
    const command = pinned ? 'pin' : 'unpin';
    program
      .command(command)
      .description(pinned ? 'keep a snapshot from collection, whatever its age, until unpinned' : 'let collection take a pinned snapshot again')
      .argument('<repo>', 'repository')
      .argument('<id>', 'the snapshot')
      .action((name: string, id: string) => run(command, (ctx) => pinCommand(ctx, name, id, pinned, { json: globals().json === true }), name)());
  }

  program
    .command('mount')
    .description('mount the snapshots of overlayfs stores that lost their mounts (at boot; every command that reads a snapshot does it too)')
    .argument('[repo...]', 'repositories (default: every RCU repository)')
    .action((names: string[]) => run('mount', (ctx) => mountCommand(ctx, names, { json: globals().json === true }))());

  program
    .command('migrate')
    .description('move a plain-directory location into the store as a snapshot (what the first sync does)')
    .argument('<repo>', 'repository')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .action((name: string, o: { wait: boolean }) => run('migrate', (ctx) => migrateCommand(ctx, name, { wait: o.wait, json: globals().json === true }), name)());

  const stamp = program.command('stamp').description('modification stamps for trees changed in place (an installed-package database...)');
  stamp
    .command('touch')
    .description('record a modification of DIR (stamp before and after)')
    .argument('<dir>', 'the tree')
    .action((dir: string) => run('stamp touch', (ctx) => stampTouch(ctx, dir, { json: globals().json === true }))());
  stamp
    .command('show')
    .description("show DIR's stamp: counter, whether a modification is in progress and by whom")
    .argument('<dir>', 'the tree')
    .action((dir: string) => run('stamp show', (ctx) => stampShow(ctx, dir, { json: globals().json === true }))());
  stamp
    .command('run')
    .description('stamp DIR, run CMD, stamp DIR again; the exit status is CMD\'s')
    .argument('<dir>', 'the tree CMD modifies')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .passThroughOptions()
    .action((dir: string, argv: string[]) => run('stamp run', (ctx) => stampRun(ctx, dir, argv))());
  // Every command that runs takes the global options too; every command
  // reports its usage errors as the program does.
  for (const cmd of [...program.commands, ...stamp.commands]) {
    if (cmd !== stamp) for (const o of globalOptions()) cmd.addOption(o);
    cmd.exitOverride().configureOutput(REPORT_ERRORS);
  }
  for (const cmd of program.commands) cmd.version(VERSION, '-V, --version', 'print the version');

  // Bare `reposnap` is a usage error, as for git and ostree: the help goes
  // to stderr and the exit status is 2.
  if (argv.length <= 2) {
    program.outputHelp({ error: true });
    return EXIT_USAGE;
  }

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError && (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')) return 0;
    // A usage error, found before any command ran: with --json anywhere on
    // the line, it is an error envelope too (commander said it on stderr).
    const out = new Output({ json: wantsJson(argv), quiet: false, command: commandOf(argv, program.commands) });
    if (err instanceof CommanderError) {
      out.fail(new ReposnapError('EUSAGE', err.message.replace(/^error: /, '')), undefined, { said: true });
      return EXIT_USAGE;
    }
    out.fail(err);
    return err instanceof ReposnapError ? err.exitCode : EXIT_FAILURE;
  }
  return exitCode;
}

installStopHandlers();
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    writeStderr('error', `reposnap: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = EXIT_FAILURE;
  },
);
