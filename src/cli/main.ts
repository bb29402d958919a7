#!/usr/bin/env node
/**
 * The reposnap command line. Each command lives in its own file and is a thin
 * layer over the library; this file wires them up and maps failures to exit
 * statuses: 0 ok, 1 failed, 2 usage or configuration error, 75 busy.
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT_FAILURE, EXIT_USAGE, ReposnapError } from '../errors.js';
import { makeContext, type GlobalOptions } from './context.js';
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
import { Output } from './output.js';
import { pathCommand } from './path.js';
import { stampRun, stampShow, stampTouch } from './stamp.js';
import { statusCommand } from './status.js';
import { syncCommand } from './sync.js';
import { verifyCommand } from './verify.js';

export const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Commander's usage errors, as one line of ours. */
const REPORT_ERRORS = { outputError: (str: string, write: (s: string) => void) => write(`reposnap: ${str.replace(/^error: /, '')}`) };

function configOption(): Option {
  return new Option('-c, --config <path>', 'repos.conf file or directory (default: $REPOSNAP_CONFIG, /etc/reposnap/repos.conf, /etc/portage/repos.conf)');
}

function quietOption(): Option {
  return new Option('-q, --quiet', 'print nothing but errors and warnings');
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
  const run = (fn: () => Promise<number>) => async () => {
    exitCode = await fn();
  };

  program
    .name('reposnap')
    .description('Keep local copies of repository trees up to date with read-copy-update snapshots.')
    .version(VERSION, '-V, --version', 'print the version')
    .addOption(configOption())
    .addOption(quietOption())
    .showSuggestionAfterError()
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput(REPORT_ERRORS);

  program
    .command('sync')
    .description('bring repositories up to date (no names: every repo with auto-sync = yes)')
    .argument('[repo...]', 'repositories to sync')
    .option('--no-wait', `fail with exit status 75 instead of waiting when another process is updating a repo`)
    .option('--allow-older', 'accept a tree older than the current one (rollback protection off for this sync)')
    .option('-n, --dry-run', 'say what each sync would change (+ added, - removed, ~ changed), writing nothing')
    .option('--json', 'print the results as JSON')
    .action((names: string[], o: { wait: boolean; allowOlder?: boolean; dryRun?: boolean; json?: boolean }) =>
      run(() => syncCommand(makeContext(globals(), o.json === true), names, { wait: o.wait, allowOlder: o.allowOlder === true, dryRun: o.dryRun === true, json: o.json === true }))(),
    );

  program
    .command('verify')
    .description('check the current snapshot against its MetaManifest (exit 1 on any mismatch)')
    .argument('<repo>', 'repository')
    .option('--full', 'hash every file (default: the signature, every file present and of its size, and the hashes of what changed since the snapshot was published)')
    .option('--json', 'print the result as JSON')
    .action((name: string, o: { full?: boolean; json?: boolean }) =>
      run(() => verifyCommand(makeContext(globals(), o.json === true), name, { full: o.full === true, json: o.json === true }))(),
    );

  program
    .command('check')
    .description('check the configuration (exit 2) and what each repo needs here: tools, folders, filesystem, backend (exit 1 on a problem)')
    .argument('[repo...]', 'repositories to check (default: all)')
    .option('--json', 'print the findings as JSON')
    .action((names: string[], o: { json?: boolean }) => run(() => checkCommand(makeContext(globals(), o.json === true), names, { json: o.json === true }))());

  program
    .command('list')
    .description('one line per repository: mode, backend, current snapshot, when a sync last ended well')
    .option('--json', 'print the list as JSON')
    .action((o: { json?: boolean }) => run(() => listCommand(makeContext(globals(), o.json === true), { json: o.json === true }))());

  program
    .command('status')
    .description('show the snapshots, staging and state of repositories')
    .argument('[repo...]', 'repositories to show (default: all)')
    .option('--json', 'print the status as JSON')
    .action((names: string[], o: { json?: boolean }) => run(() => statusCommand(makeContext(globals(), o.json === true), names, { json: o.json === true }))());

  program
    .command('path')
    .description('print the canonical path of the current snapshot: the path a reader should use')
    .argument('<repo>', 'repository')
    .option('--json', 'print the path as JSON')
    .action((name: string, o: { json?: boolean }) => run(() => pathCommand(makeContext(globals(), o.json === true), name, { json: o.json === true }))());

  program
    .command('diff')
    .description('show what changed between two kept snapshots: + added, - removed, ~ changed (default: the previous and the current; one id: it and the current)')
    .argument('<repo>', 'repository')
    .argument('[ids...]', 'the older and the newer snapshot id')
    .option('--json', 'print the changes as JSON')
    .action((name: string, ids: string[], o: { json?: boolean }) => run(() => diffCommand(makeContext(globals(), o.json === true), name, ids, { json: o.json === true }))());

  program
    .command('exec')
    .description('run a command while holding a lease on the current snapshot (REPOSNAP_SNAPSHOT, REPOSNAP_SNAPSHOT_ID in its environment)')
    .argument('<repo>', 'repository')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .passThroughOptions()
    .action((name: string, argv: string[]) => run(() => execCommand(makeContext(globals(), false), name, argv))());

  program
    .command('gc')
    .description('collect old snapshots now, saying for each why it is kept or that it goes')
    .argument('[repo...]', 'repositories (default: every RCU repository)')
    .option('-n, --dry-run', 'only say what would be collected')
    .option('--json', 'print the decisions as JSON')
    .action((names: string[], o: { dryRun?: boolean; json?: boolean }) =>
      run(() => gcCommand(makeContext(globals(), o.json === true), names, { dryRun: o.dryRun === true, json: o.json === true }))(),
    );

  program
    .command('revert')
    .description('turn the location back into a plain directory with the current content and remove the store')
    .argument('<repo>', 'repository')
    .option('-f, --force', 'revert even while readers hold leases (they lose their snapshot)')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .option('--json', 'print the result as JSON')
    .action((name: string, o: { force?: boolean; wait: boolean; json?: boolean }) =>
      run(() => revertCommand(makeContext(globals(), o.json === true), name, { force: o.force === true, wait: o.wait, json: o.json === true }))(),
    );

  program
    .command('rollback')
    .description('make an older kept snapshot current, atomically (default: the one before the current); the next sync brings upstream back')
    .argument('<repo>', 'repository')
    .argument('[id]', 'the snapshot to make current')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .option('--json', 'print the result as JSON')
    .action((name: string, id: string | undefined, o: { wait: boolean; json?: boolean }) =>
      run(() => rollbackCommand(makeContext(globals(), o.json === true), name, id, { wait: o.wait, json: o.json === true }))(),
    );

  for (const pinned of [true, false]) {
    program
      .command(pinned ? 'pin' : 'unpin')
      .description(pinned ? 'keep a snapshot from collection, whatever its age, until unpinned' : 'let collection take a pinned snapshot again')
      .argument('<repo>', 'repository')
      .argument('<id>', 'the snapshot')
      .option('--json', 'print the result as JSON')
      .action((name: string, id: string, o: { json?: boolean }) => run(() => pinCommand(makeContext(globals(), o.json === true), name, id, pinned, { json: o.json === true }))());
  }

  program
    .command('mount')
    .description('mount the snapshots of overlayfs stores that lost their mounts (at boot; every command that reads a snapshot does it too)')
    .argument('[repo...]', 'repositories (default: every RCU repository)')
    .option('--json', 'print what was mounted as JSON')
    .action((names: string[], o: { json?: boolean }) => run(() => mountCommand(makeContext(globals(), o.json === true), names, { json: o.json === true }))());

  program
    .command('migrate')
    .description('move a plain-directory location into the store as a snapshot (what the first sync does)')
    .argument('<repo>', 'repository')
    .option('--no-wait', 'fail with exit status 75 instead of waiting for a running update')
    .option('--json', 'print the result as JSON')
    .action((name: string, o: { wait: boolean; json?: boolean }) =>
      run(() => migrateCommand(makeContext(globals(), o.json === true), name, { wait: o.wait, json: o.json === true }))(),
    );

  const stamp = program.command('stamp').description('modification stamps for trees changed in place (an installed-package database...)');
  stamp
    .command('touch')
    .description('record a modification of DIR (stamp before and after)')
    .argument('<dir>', 'the tree')
    .action((dir: string) => run(() => stampTouch(makeContext(globals(), false), dir))());
  stamp
    .command('show')
    .description("show DIR's stamp: counter, whether a modification is in progress and by whom")
    .argument('<dir>', 'the tree')
    .option('--json', 'print {"counter","inProgress","pid","time",...} as JSON')
    .action((dir: string, o: { json?: boolean }) => run(() => stampShow(makeContext(globals(), o.json === true), dir, { json: o.json === true }))());
  stamp
    .command('run')
    .description('stamp DIR, run CMD, stamp DIR again; the exit status is CMD\'s')
    .argument('<dir>', 'the tree CMD modifies')
    .argument('<command...>', 'the command and its arguments (put -- before it)')
    .passThroughOptions()
    .action((dir: string, argv: string[]) => run(() => stampRun(makeContext(globals(), false), dir, argv))());
  // Every command that runs takes the global options too; every command
  // reports its usage errors as the program does.
  for (const cmd of [...program.commands, ...stamp.commands]) {
    if (cmd !== stamp) cmd.addOption(configOption()).addOption(quietOption());
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
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      return EXIT_USAGE;
    }
    const json = argv.includes('--json');
    new Output({ json, quiet: false }).error(err);
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
    process.stderr.write(`reposnap: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
