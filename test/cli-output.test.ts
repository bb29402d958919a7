/**
 * What the command line prints, as scripts, logs and people see it: one
 * JSON envelope for every command, errors included (usage and
 * configuration errors too); the tools' own output under -v; the
 * --log-file; syslog priorities when stderr is the journal; and progress on
 * a terminal, phase by phase, that never reaches a script.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatBytes } from '../src/cli/output.js';
import { ProgressBoard } from '../src/cli/progress.js';
import { SyncMeter } from '../src/cli/sync.js';
import type { SourceProgress } from '../src/sources/source.js';
import { CLI, rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

interface Envelope {
  version: number;
  command: string | null;
  results?: unknown;
  error?: { code: string; message: string; repo?: string; file?: string; line?: number; section?: string; key?: string };
  warnings?: string[];
}

function envelope(stdout: string): Envelope {
  return JSON.parse(stdout) as Envelope;
}

/** A repo synced once from an rsync upstream of `n` files over folders of 100. */
async function rsyncRepo(n = 10): Promise<{ dir: string; conf: string; upstream: string }> {
  const dir = tmpdir();
  const upstream = path.join(dir, 'upstream');
  const files: Record<string, string> = { 'metadata/timestamp.chk': 'T1\n' };
  for (let i = 0; i < n; i++) files[`cat-${Math.floor(i / 100)}/pkg-${i}`] = `v1 ${i}\n`;
  await writeTree(upstream, files);
  const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', upstream));
  return { dir, conf, upstream };
}

/** What was written between the terminal's line erasures and cursor moves: each line as it was drawn. */
function drawn(screen: string): string[] {
  const ESC = String.fromCharCode(27);
  return screen.split(new RegExp(`\r\n|\r|\n|${ESC}\\[K|${ESC}\\[1A`)).filter((l) => l !== '');
}

/** `sh -c script` under a pseudo-terminal (script(1)): what a person at a terminal would see. */
function onTerminal(script: string): string {
  return execFileSync('script', ['-qec', script, '/dev/null'], { encoding: 'utf8', env: { ...process.env, REPOSNAP_CONFIG: '', COLUMNS: '200' } });
}

describe('--json: one envelope for every command', () => {
  it('wraps every command\'s result as {"version":1,"command":...,"results":...}, times in whole milliseconds', async () => {
    const { dir, conf, upstream } = await rsyncRepo();
    const sync = await runCli(['-c', conf, 'sync', '--json']);
    expect(sync.code).toBe(0);
    const synced = envelope(sync.stdout);
    expect(synced).toMatchObject({ version: 1, command: 'sync', results: [{ repo: 'test', outcome: 'updated', snapshot: { id: 1 } }] });
    const timings = (synced.results as Array<{ timings: Record<string, number> }>)[0]?.timings ?? {};
    expect(Object.keys(timings)).toContain('totalMs');
    for (const [k, v] of Object.entries(timings)) expect(Number.isInteger(v), `${k} = ${v}`).toBe(true);

    await fs.writeFile(path.join(upstream, 'metadata', 'timestamp.chk'), 'T2 later\n');
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const stampDir = path.join(dir, 'stamped');
    await fs.mkdir(stampDir);

    // --json before the command works as after it.
    const cases: Array<[string[], string, (results: unknown) => void]> = [
      [['status', '--json'], 'status', (r) => expect(r).toMatchObject({ repos: [{ name: 'test', current: { id: 2 } }] })],
      [['--json', 'list'], 'list', (r) => expect(r).toMatchObject({ repos: [{ repo: 'test', snapshot: 2 }] })],
      [['check', '--json'], 'check', (r) => expect(r).toMatchObject({ repos: [{ repo: 'test' }] })],
      [['path', 'test', '--json'], 'path', (r) => expect(r).toEqual({ repo: 'test', path: path.join(dir, 'store', 'snapshots', '2') })],
      [['diff', 'test', '--json'], 'diff', (r) => expect(r).toMatchObject({ repo: 'test', from: 1, to: 2, changes: [{ kind: 'changed', path: 'metadata/timestamp.chk' }] })],
      [['sync', '--dry-run', '--json'], 'sync', (r) => expect(r).toEqual([{ repo: 'test', outcome: 'up-to-date', changes: [] }])],
      [['gc', '--dry-run', '--json'], 'gc', (r) => expect(r).toMatchObject([{ repo: 'test', dryRun: true }])],
      [['pin', 'test', '1', '--json'], 'pin', (r) => expect(r).toEqual({ repo: 'test', id: 1, pinned: true, changed: true })],
      [['unpin', 'test', '1', '--json'], 'unpin', (r) => expect(r).toEqual({ repo: 'test', id: 1, pinned: false, changed: true })],
      [['rollback', 'test', '--json'], 'rollback', (r) => expect(r).toMatchObject({ repo: 'test', from: 2, to: 1 })],
      [['migrate', 'test', '--json'], 'migrate', (r) => expect(r).toEqual({ repo: 'test', migrated: null })],
      [['stamp', 'touch', stampDir, '--json'], 'stamp touch', (r) => expect(r).toEqual({ dir: stampDir, counter: 2 })],
      [['stamp', 'show', stampDir, '--json'], 'stamp show', (r) => expect(r).toMatchObject({ dir: stampDir, counter: 2, inProgress: false })],
      [['revert', 'test', '--json'], 'revert', (r) => expect(r).toMatchObject({ repo: 'test', reverted: true, revertedFrom: 1 })],
    ];
    for (const [args, command, check] of cases) {
      const r = await runCli(['-c', conf, ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      const e = envelope(r.stdout);
      expect(Object.keys(e), args.join(' ')).toEqual(['version', 'command', 'results']);
      expect(e.version).toBe(1);
      expect(e.command).toBe(command);
      check(e.results);
    }
  });

  it('prints failures as {"version":1,"command":...,"error":{code,message,...}} with the exit statuses unchanged', async () => {
    const { dir, conf } = await rsyncRepo();
    const badText = `${rcuConf(dir)}sync-rcu-spare-snapshots = many\n`;
    const bad = await writeConf(dir, badText, 'bad.conf');
    const badLine = badText.split('\n').indexOf('sync-rcu-spare-snapshots = many') + 1;
    const runs: Array<[string[], number, Envelope]> = [
      // Usage errors, found before any command runs: --json anywhere on the line.
      [['--json', 'bogus'], 2, { version: 1, command: null, error: { code: 'EUSAGE', message: expect.stringContaining("unknown command 'bogus'") as string } }],
      [['status', '--bogus', '--json'], 2, { version: 1, command: 'status', error: { code: 'EUSAGE', message: "unknown option '--bogus'" } }],
      [['--json', 'diff'], 2, { version: 1, command: 'diff', error: { code: 'EUSAGE', message: "missing required argument 'repo'" } }],
      [['diff', 'test', '1', '2', '3', '--json'], 2, { version: 1, command: 'diff', error: { code: 'EUSAGE', message: expect.stringContaining('at most two ids') as string, repo: 'test' } }],
      // Configuration errors say where.
      [
        ['-c', bad, 'sync', '--json'],
        2,
        { version: 1, command: 'sync', error: { code: 'ECONFIG', message: expect.stringContaining(`bad.conf:${badLine}: [test]`) as string, repo: 'test', file: bad, line: badLine, section: 'test', key: 'sync-rcu-spare-snapshots' } },
      ],
      [['-c', conf, 'path', 'nope', '--json'], 2, { version: 1, command: 'path', error: { code: 'ENOREPO', message: expect.stringContaining('no repository named "nope"') as string, repo: 'nope' } }],
      // A failure of the command itself.
      [['-c', conf, 'path', 'test', '--json'], 1, { version: 1, command: 'path', error: { code: 'ESTORE', message: expect.stringContaining('has not been synced yet') as string, repo: 'test' } }],
      // A log file that cannot be opened is a usage error, before anything is done.
      [['-c', conf, 'sync', '--json', '--log-file', path.join(dir, 'no', 'such', 'log')], 2, { version: 1, command: 'sync', error: { code: 'EUSAGE', message: expect.stringContaining('cannot open the log file') as string } }],
    ];
    for (const [args, code, want] of runs) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(code);
      expect(envelope(r.stdout), args.join(' ')).toEqual(want);
      // stderr keeps its one human line.
      expect(r.stderr, args.join(' ')).toMatch(/^reposnap: /);
    }
    await expect(fs.lstat(path.join(dir, 'repo'))).rejects.toThrow();

    // Per-repo failures of a sync stay in its results, each with its error.
    const broken = await writeConf(dir, rcuConf(dir, '', 'rsync', path.join(dir, 'gone')), 'broken.conf');
    const r = await runCli(['-c', broken, 'sync', '--json']);
    expect(r.code).toBe(1);
    expect(envelope(r.stdout)).toMatchObject({ version: 1, command: 'sync', results: [{ repo: 'test', error: { code: 'ESOURCE', repo: 'test' } }] });
    // Without --json, no JSON.
    const human = await runCli(['-c', broken, 'sync']);
    expect(human.stdout).toBe('');
    // `--json` after `--` belongs to the command exec runs, not to reposnap.
    const exec = await runCli(['-c', conf, 'exec', 'test', '--', 'echo', '--json']);
    expect(exec.code).toBe(1);
    expect(exec.stdout).toBe('');
  });
});

describe('logging', () => {
  it('-v shows rsync\'s itemized changes on stderr; without it only the result line', async () => {
    const { conf, upstream } = await rsyncRepo();
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-3'), 'v2\n');
    await fs.writeFile(path.join(upstream, 'cat-0', 'new'), 'new\n');
    const v = await runCli(['-c', conf, 'sync', '-v']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^test: updated to snapshot 2 /);
    expect(v.stderr).toMatch(/^reposnap: test: rsync --dry-run: >f\+{9} 4 cat-0\/new$/m);
    expect(v.stderr).toMatch(/^reposnap: test: rsync: >f\.s.{7} 3 cat-0\/pkg-3$/m);
    expect(v.stderr).toMatch(/^reposnap: test: rsync: Number of files: /m);

    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-4'), 'v2\n');
    const plain = await runCli(['-c', conf, 'sync']);
    expect(plain.stderr).toBe('');
    expect(plain.stdout.trim().split('\n')).toHaveLength(1);
  });

  it("-v shows git's fetch", async () => {
    const dir = tmpdir();
    const work = path.join(dir, 'work');
    await writeTree(work, { 'metadata/timestamp.chk': 'T1\n' });
    const git = (...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=T', '-c', 'user.email=t@example.org', '-c', 'init.defaultBranch=main', ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, HOME: dir, GIT_CONFIG_NOSYSTEM: '1' } });
    git('init', '-q');
    git('add', '-A');
    git('commit', '-qm', 'one');
    const conf = await writeConf(dir, rcuConf(dir, '', 'git', `file://${work}`));
    const r = await runCli(['-c', conf, 'sync', '--verbose']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^reposnap: test: git: From file://${work}$`, 'm'));
    expect(r.stderr).toMatch(/^reposnap: test: git: .*-> refs\/reposnap\/fetched$/m);
  });

  it('--log-file appends timestamped lines: results, warnings, errors, and with -v the tools\' output', async () => {
    const { dir, conf, upstream } = await rsyncRepo();
    const log = path.join(dir, 'reposnap.log');
    const line = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z reposnap\[\d+\] (info|warning|error|debug): .+$/;
    // The log is written whatever --quiet and --json say on the terminal.
    const first = await runCli(['-c', conf, 'sync', '-q', '--log-file', log]);
    expect(first).toMatchObject({ code: 0, stdout: '', stderr: '' });
    let lines = (await fs.readFile(log, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(line);
    expect(lines[0]).toMatch(/ info: test: updated to snapshot 1 /);

    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v2\n');
    expect((await runCli(['-c', conf, 'sync', '-v', '--json', '--log-file', log])).code).toBe(0);
    const broken = await writeConf(dir, rcuConf(dir, '', 'rsync', path.join(dir, 'gone')), 'broken.conf');
    expect((await runCli(['-c', broken, '--log-file', log, 'sync'])).code).toBe(1);
    lines = (await fs.readFile(log, 'utf8')).trimEnd().split('\n');
    for (const l of lines) expect(l).toMatch(line);
    expect(lines.filter((l) => / info: test: updated to snapshot 2 /.test(l))).toHaveLength(1);
    expect(lines.some((l) => / debug: test: rsync: >f\..{8} 3 cat-0\/pkg-1$/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/ error: repo test: source .*gone does not exist$/);
  });

  it('writes syslog priorities on stderr when it is the journal (JOURNAL_STREAM names it), and only then', async () => {
    const { dir, conf, upstream } = await rsyncRepo();
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v2\n');
    const err = path.join(dir, 'stderr');
    await fs.writeFile(err, '');
    // The journal's stream stood in for by a file: what matters is that stderr is the file JOURNAL_STREAM names.
    const run = (journal: string): string => {
      execFileSync(
        'sh',
        ['-c', `exec 2>"$ERR"; export JOURNAL_STREAM=${journal}; "$NODE" "$CLI" -c "$CONF" -v sync; "$NODE" "$CLI" -c "$CONF" path nope; "$NODE" "$CLI" -c "$CONF" bogus; true`],
        { env: { ...process.env, ERR: err, NODE: process.execPath, CLI, CONF: conf, REPOSNAP_CONFIG: '' }, stdio: 'ignore' },
      );
      return execFileSync('cat', [err], { encoding: 'utf8' });
    };
    const journal = await fs.stat(err);
    const said = run(`${journal.dev}:${journal.ino}`);
    const lines = said.trimEnd().split('\n');
    for (const l of lines) expect(l).toMatch(/^<[3467]>reposnap: /);
    expect(lines).toContainEqual(expect.stringMatching(/^<7>reposnap: test: rsync: >f\..{8} 3 cat-0\/pkg-1$/));
    expect(lines).toContainEqual(expect.stringMatching(/^<3>reposnap: no repository named "nope"/));
    expect(lines).toContainEqual(expect.stringMatching(/^<3>reposnap: unknown command 'bogus'/));

    await fs.writeFile(err, '');
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-2'), 'v2\n');
    const other = run(`${journal.dev}:${journal.ino + 1}`);
    expect(other).toMatch(/^reposnap: test: rsync/m);
    expect(other).not.toMatch(/^<\d>/m);
  });
});

describe('the output of hooks and sync-verify-command', () => {
  /** A repo whose verify command and hook write to both their streams. */
  async function talkingRepo(): Promise<{ dir: string; conf: string }> {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { 'metadata/timestamp.chk': 'T1\n' });
    await writeTree(path.join(dir, 'postsync.d'), {
      '10-talk': {
        content: [
          '#!/bin/sh',
          'echo "hook says"',
          'echo "hook complains" >&2',
          // A line that gives its own priority keeps it.
          'echo "<3>hook\'s own error" >&2',
          "printf 'two\\nlines\\n'",
          "printf 'caf\\351\\n'",
          "printf 'no newline at the end'",
          '',
        ].join('\n'),
        mode: 0o755,
      },
    });
    const conf = await writeConf(dir, rcuConf(dir, `sync-verify-command = echo verified; echo verify warns >&2\nsync-hooks-dir = ${dir}/postsync.d`));
    return { dir, conf };
  }

  /** The CLI's stderr, when it is a file JOURNAL_STREAM names (`journal`) or not. */
  function stderrOf(dir: string, conf: string, journal: boolean, args = ['sync']): Buffer {
    const err = path.join(dir, `stderr-${journal}`);
    execFileSync('sh', ['-c', `: > "$ERR"; exec 2>"$ERR"; ${journal ? 'JOURNAL_STREAM=$(stat -L -c %d:%i "$ERR")' : 'JOURNAL_STREAM=1:1'} "$NODE" "$CLI" -c "$CONF" "$@"`, 'sh', ...args], {
      env: { ...process.env, ERR: err, NODE: process.execPath, CLI, CONF: conf, REPOSNAP_CONFIG: '' },
      stdio: 'ignore',
    });
    return execFileSync('cat', [err]);
  }

  it('in the journal: a priority on every line, information for stdout, a warning for stderr', async () => {
    const { dir, conf } = await talkingRepo();
    const raw = stderrOf(dir, conf, true);
    const said = raw.toString('utf8');
    // Each line's bytes as the command wrote them, behind the priority.
    expect(raw.includes(Buffer.from('<6>caf\xe9\n', 'latin1'))).toBe(true);
    // The last line, which had no newline, ends with one: the journal's lines are whole.
    expect(said.endsWith('\n')).toBe(true);
    const lines = said.slice(0, -1).split('\n');
    expect(lines).toHaveLength(9);
    for (const l of lines) expect(l).toMatch(/^<[0-7]>/);
    // Each stream in its order (the two streams come through two pipes: between them, as they arrive).
    expect(lines.filter((l) => l.startsWith('<6>'))).toEqual(['<6>verified', '<6>hook says', '<6>two', '<6>lines', '<6>caf\ufffd', '<6>no newline at the end']);
    expect(lines.filter((l) => l.startsWith('<4>'))).toEqual(['<4>verify warns', '<4>hook complains']);
    expect(lines).toContain("<3>hook's own error");
    // The verify command's output before the hook's.
    expect(lines.indexOf('<6>verified')).toBeLessThan(lines.indexOf('<6>hook says'));
  });

  it('elsewhere: passed through as it is, byte for byte', async () => {
    const { dir, conf } = await talkingRepo();
    const said = stderrOf(dir, conf, false);
    expect(said.toString('latin1')).toBe("verified\nverify warns\nhook says\nhook complains\n<3>hook's own error\ntwo\nlines\ncaf\xe9\nno newline at the end");
  });

  it('with --log-file: recorded there too, naming the repository and the command, and still on stderr', async () => {
    const { dir, conf } = await talkingRepo();
    const log = path.join(dir, 'reposnap.log');
    await writeTree(path.join(dir, 'postsync.d'), { '20-controls': { content: "#!/bin/sh\nprintf 'bell\\a and \\033[31mred\\n'\n", mode: 0o755 } });
    const said = stderrOf(dir, conf, false, ['--log-file', log, 'sync']).toString('latin1');
    // On stderr a line at a time, each as the command wrote it (not decoded), a newline after the last.
    expect(said.split('\n')).toEqual(expect.arrayContaining(['verified', 'verify warns', 'hook says', 'hook complains', "<3>hook's own error", 'two', 'lines', 'caf\xe9', 'no newline at the end']));
    const lines = (await fs.readFile(log, 'utf8')).trimEnd().split('\n').map((l) => l.replace(/^\S+ reposnap\[\d+\] /, ''));
    const verify = 'sync-verify-command';
    const hook = `post-sync hook ${path.join(dir, 'postsync.d', '10-talk')}`;
    // A control character cannot end a record or move a reader's cursor.
    expect(lines).toContain(`info: test: ${hook.replace('10-talk', '20-controls')}: bell\\x07 and \\x1b[31mred`);
    expect(lines).toContain(`info: test: ${verify}: verified`);
    expect(lines).toContain(`warning: test: ${verify}: verify warns`);
    expect(lines).toContain(`info: test: ${hook}: hook says`);
    expect(lines).toContain(`warning: test: ${hook}: hook complains`);
    expect(lines).toContain(`info: test: ${hook}: no newline at the end`);
    // In the log, decoded as UTF-8.
    expect(lines).toContain(`info: test: ${hook}: caf\ufffd`);
    expect(lines).toContainEqual(expect.stringMatching(/^info: test: updated to snapshot 1 /));
  });

  it('on a terminal: written above the progress line, not across it', async () => {
    const { conf } = await talkingRepo();
    const lines = drawn(onTerminal(`"${process.execPath}" "${CLI}" -c "${conf}" sync`));
    for (const l of ['verified', 'verify warns', 'hook says', 'hook complains', 'two', 'lines', 'no newline at the end']) expect(lines).toContain(l);
    expect(lines).toContainEqual(expect.stringMatching(/^test: updated to snapshot 1 /));
    expect(lines.filter((l) => /^test: (verifying|running post-sync hooks)./.test(l))).toEqual([]);
  });
});

describe('progress on a terminal', () => {
  it('names each phase, counts against the plan, and prints the result line; never with --json, --quiet, or in the journal', async () => {
    const { dir, conf, upstream } = await rsyncRepo(600);
    const other = rcuConf(dir, '', 'local', upstream).replace('[test]', '[other]').replaceAll(`${dir}/repo`, `${dir}/other`).replaceAll(`${dir}/store`, `${dir}/other-store`);
    await fs.appendFile(conf, `\n${other}`);
    const cli = `"${process.execPath}" "${CLI}" -c "${conf}"`;
    const first = onTerminal(`${cli} sync`);
    // Both repositories, each with its own line and its own result.
    const lines = drawn(first);
    expect(lines).toContain('test: starting');
    expect(lines).toContainEqual(expect.stringMatching(/^other: filling: [\d,]+ changed, [\d,]+ files and folders checked$/));
    // rsync's one plain run: what it wrote so far, in bytes.
    expect(lines).toContainEqual(expect.stringMatching(/^test: filling: [\d,]+ files, \d+ folders changed, [\d,]+ checked; [\d.]+ (B|KiB)(, .*\/s)?$/));
    expect(lines).toContainEqual(expect.stringMatching(/^test: updated to snapshot 1 /));
    expect(lines).toContainEqual(expect.stringMatching(/^other: updated to snapshot 1 /));

    // A second sync with changes: the plan, the clone beside it, filling against the plan's total.
    let bytes = 0;
    for (let i = 0; i < 600; i += 2) {
      const content = `v2 ${i} changed\n`;
      bytes += content.length;
      await fs.writeFile(path.join(upstream, `cat-${Math.floor(i / 100)}`, `pkg-${i}`), content);
    }
    const second = onTerminal(`${cli} sync test`);
    const phases = drawn(second);
    expect(phases).toContain('test: planning');
    // The clone starts at the plan's first change; the plan goes on beside it, and the fill may begin before it ends.
    expect(phases).toContainEqual(expect.stringMatching(/^test: planning(: [\d,]+ files to change)?; cloning beside it$/));
    // The plan's total of entries and of bytes, all written (the rate only after a second of it).
    const written = `${formatBytes(bytes)} of ${formatBytes(bytes)}`;
    expect(phases).toContainEqual(expect.stringMatching(new RegExp(`^test: filling 300 of 300 \\(100%\\): 300 files; ${written}(, .*/s)?$`)));
    expect(phases).toContain('test: committing');
    // Drawn in place: the line is erased, never scrolled.
    expect(second).toContain('\r\x1b[K');
    expect(phases.at(-1)).toMatch(/^test: updated to snapshot 2 \(\+0 ~300 -0/);

    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v3 three\n');
    const json = onTerminal(`${cli} sync test --json`);
    expect(json).not.toContain('\x1b[K');
    expect(envelope(json.replaceAll('\r\n', '\n'))).toMatchObject({ command: 'sync', results: [{ outcome: 'updated' }] });
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v4 four four\n');
    expect(onTerminal(`${cli} sync test -q`)).toBe('');
    // The journal is no terminal to draw on, even when it is one.
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v5 five five five\n');
    const journal = onTerminal(`JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) ${cli} sync test`);
    expect(journal).not.toContain('\x1b[K');
    expect(journal).toMatch(/^test: updated to snapshot 5 /);
  });

  it('draws the bytes written against their total and their rate', () => {
    const MiB = 1024 * 1024;
    let now = 0;
    const m = new SyncMeter('gentoo', () => now);
    const fetch = (p: Omit<SourceProgress, 'scanned'> & { scanned?: number }): boolean => m.update({ repo: 'gentoo', phase: 'fetch', scanned: p.changed, ...p });
    expect(fetch({ changed: 0 })).toBe(true);
    expect(m.line()).toBe('gentoo: filling');
    now = 2000;
    // rsync applying its plan: entries and bytes against the plan's, the rate in bytes.
    expect(fetch({ changed: 812, folders: 12, total: 1209, bytes: 4 * MiB, totalBytes: 6 * MiB })).toBe(false);
    expect(m.line()).toBe('gentoo: filling 812 of 1,209 (67%): 800 files, 12 folders; 4.0 MiB of 6.0 MiB, 2.0 MiB/s');
    // A plan of deletions alone writes nothing: the rate in entries.
    expect(fetch({ changed: 40, folders: 0, total: 50, bytes: 0, totalBytes: 0 })).toBe(false);
    expect(m.line()).toBe('gentoo: filling 40 of 50 (80%): 40 files, 20/s');
    // rsync's one plain run: bytes without a total.
    expect(fetch({ scanned: 3000, changed: 2000, folders: 100, bytes: 3 * MiB })).toBe(false);
    expect(m.line()).toBe('gentoo: filling: 1,900 files, 100 folders changed, 3,000 checked; 3.0 MiB, 1.5 MiB/s');

    // On the board as the meter says it.
    let screen = '';
    const tty = { columns: 200, write: (s: string) => ((screen += s), true) } as unknown as NodeJS.WriteStream;
    const board = new ProgressBoard(tty);
    board.set('gentoo', m.line(), true);
    board.close();
    expect(drawn(screen)).toEqual(['gentoo: filling: 1,900 files, 100 folders changed, 3,000 checked; 3.0 MiB, 1.5 MiB/s']);
  });

  it('draws nothing when stderr is not a terminal', async () => {
    const { conf, upstream } = await rsyncRepo(300);
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.stderr).toBe('');
    await fs.writeFile(path.join(upstream, 'cat-0', 'pkg-1'), 'v2\n');
    // stdout a terminal, stderr a file: still nothing drawn.
    const dir = path.dirname(conf);
    const out = onTerminal(`"${process.execPath}" "${CLI}" -c "${conf}" sync 2>"${dir}/err"`);
    expect(out).toMatch(/^test: updated to snapshot 2 /m);
    expect(await fs.readFile(path.join(dir, 'err'), 'utf8')).toBe('');
  });
});
