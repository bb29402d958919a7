/**
 * The resume contract, end to end: an update interrupted at any phase, by
 * SIGINT, SIGTERM or SIGKILL, is followed by a sync that publishes exactly
 * upstream (content, modes, owners, symlinks, deletions), for every source.
 * Phases are reached exactly through failpoints (src/util/failpoint.ts), not
 * by killing at a guessed instant. Then the three ways of resuming that used
 * to publish a wrong tree or call a stale one current, each as its own case.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interruptAt } from '../torture/lib.js';
import { runCli, sleep, startCli, tmpdir, writeConf } from './helpers.js';
import { digest, makeUpstream, SOURCE_TYPES, type SourceType, type Upstream } from '../torture/upstreams.js';

const PHASES = ['staged', 'fill-midway', 'filled', 'sealed', 'renamed'] as const;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGKILL'];

const upstreams: Upstream[] = [];
afterAll(() => {
  for (const u of upstreams) u.close();
});

function conf(dir: string, up: Upstream, extra = ''): string {
  return `[test]
location = ${path.join(dir, 'repo')}
sync-rcu = yes
sync-rcu-store-dir = ${path.join(dir, 'store')}
${up.conf}${extra}
`;
}

interface StatusJson {
  repos: Array<{
    busy: unknown;
    current: { id: number } | null;
    staging: Array<{ tx: string; locked: boolean; fill: string | null; heading: string | null; rejected: unknown }>;
  }>;
}

async function status(confPath: string): Promise<StatusJson['repos'][number]> {
  const r = await runCli(['-c', confPath, 'status', '--json']);
  return (JSON.parse(r.stdout) as { results: StatusJson }).results.repos[0] as StatusJson['repos'][number];
}

/** Wait until no process (an orphan the kernel has not reaped yet) holds the repo. */
async function idle(confPath: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = await status(confPath);
    if (s.busy === null && s.staging.every((x) => !x.locked)) return;
    await sleep(25);
  }
  throw new Error('the repo stayed busy');
}

async function locationDigest(dir: string): Promise<string> {
  return digest(await fs.realpath(path.join(dir, 'repo')));
}

/** A repo synced to upstream's tree A, with upstream now serving B. */
async function syncedToA(type: SourceType, tag: string, extra = ''): Promise<{ dir: string; up: Upstream; c: string }> {
  const dir = tmpdir(tag);
  const up = await makeUpstream(type, dir);
  upstreams.push(up);
  await up.serveA();
  const c = await writeConf(dir, conf(dir, up, extra));
  expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
  await up.serveB();
  return { dir, up, c };
}

describe('an interrupted update resumes to exactly upstream', () => {
  for (const type of SOURCE_TYPES) {
    it(`${type}: every phase x SIGINT, SIGTERM, SIGKILL`, { timeout: 240_000 }, async () => {
      const failures: string[] = [];
      for (const phase of PHASES) {
        for (const signal of SIGNALS) {
          const dir = tmpdir(`resume-${type}`);
          const up = await makeUpstream(type, dir);
          upstreams.push(up);
          await up.serveA();
          const c = await writeConf(dir, conf(dir, up));
          expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
          const a = await up.expected();
          expect(await locationDigest(dir)).toBe(a);

          await up.serveB();
          const b = await up.expected();
          const cut = await interruptAt(['-c', c, 'sync'], phase, signal);
          const label = `${phase}/${signal}`;
          if (!cut.reached) failures.push(`${label}: never reached the failpoint (exit ${cut.code}: ${cut.stderr.trim()})`);
          // Interrupted, readers still see one whole tree: A, or B once published.
          const seen = await locationDigest(dir);
          if (seen !== a && seen !== b) failures.push(`${label}: the location shows neither tree after the interruption`);
          await idle(c);

          const next = await runCli(['-c', c, 'sync', '--json']);
          if (next.code !== 0) failures.push(`${label}: the next sync failed: ${next.stderr.trim()}`);
          if ((await locationDigest(dir)) !== b) failures.push(`${label}: the next sync did not publish exactly upstream`);
          // And it stays so: one more sync finds nothing to do.
          const again = JSON.parse((await runCli(['-c', c, 'sync', '--json'])).stdout) as { results: Array<{ outcome: string }> };
          if (again.results[0]?.outcome !== 'up-to-date') failures.push(`${label}: a third sync still found changes`);
          up.close();
        }
      }
      expect(failures).toEqual([]);
    });
  }
});

describe('the ways resuming went wrong', () => {
  for (const type of ['local', 'rsync'] as const) {
    it(`${type}: killed while sync-verify-command runs, the next sync publishes the deletion instead of saying "up to date"`, async () => {
      for (const signal of SIGNALS) {
        const dir = tmpdir(`verify-${type}`);
        const up = await makeUpstream(type, dir);
        await up.serveA();
        const ready = path.join(dir, 'verifying');
        const c = await writeConf(dir, conf(dir, up, `sync-verify-command = touch '${ready}'; sleep 0.5\n`));
        expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
        await fs.rm(ready);
        await up.serveB(); // deletes doomed/ among other changes
        const run = startCli(['-c', c, 'sync']);
        while (!(await fs.stat(ready).catch(() => undefined))) await sleep(5);
        run.child.kill(signal);
        await run.done;
        await fs.rm(ready);
        expect(await fs.stat(path.join(dir, 'repo', 'doomed')).catch(() => undefined)).toBeDefined();
        await idle(c);

        const next = await runCli(['-c', c, 'sync', '--json']);
        expect(next.code).toBe(0);
        const report = (JSON.parse(next.stdout) as { results: Array<{ outcome: string; resumed: boolean }> }).results[0];
        expect(report).toMatchObject({ outcome: 'updated', resumed: true });
        expect(await fs.stat(path.join(dir, 'repo', 'doomed')).catch(() => undefined)).toBeUndefined();
        expect(await locationDigest(dir)).toBe(await up.expected());
      }
    });
  }

  it('quarantine mode: killed while sync-verify-command runs, the next sync brings the quarantine into place', async () => {
    for (const signal of SIGNALS) {
      const dir = tmpdir('verify-quarantine');
      const up = await makeUpstream('local', dir);
      await up.serveA();
      const ready = path.join(dir, 'verifying');
      const c = await writeConf(
        dir,
        `[test]\nlocation = ${path.join(dir, 'repo')}\n${up.conf}sync-verify-command = touch '${ready}'; sleep 0.5\n`,
      );
      expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
      await fs.rm(ready);
      await up.serveB();
      const run = startCli(['-c', c, 'sync']);
      while (!(await fs.stat(ready).catch(() => undefined))) await sleep(5);
      run.child.kill(signal);
      await run.done;
      expect(await fs.stat(path.join(dir, 'repo', 'doomed')).catch(() => undefined)).toBeDefined();

      expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
      const location = path.join(dir, 'repo');
      await fs.rm(path.join(location, '.tmp-unverified-download-quarantine'), { recursive: true, force: true });
      for (const stamp of await fs.readdir(location)) if (stamp.startsWith('.modification_time')) await fs.rm(path.join(location, stamp));
      expect(await digest(location)).toBe(await up.expected());
    }
  });

  it('git: a rejected update toward C2 is never resumed toward C3', async () => {
    const dir = tmpdir('git-c3');
    const up = await makeUpstream('git', dir);
    upstreams.push(up);
    await up.serveA(); // C1
    // C2 (tree B) fails verification: it has cat-a/pkg/pkg-2.ebuild.
    const c = await writeConf(dir, conf(dir, up, 'sync-verify-command = test ! -e cat-a/pkg/pkg-2.ebuild\nsync-rcu-prepare-staging = no\n'));
    expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
    await up.serveB();
    const rejected = await runCli(['-c', c, 'sync']);
    expect(rejected.code).toBe(1);
    let st = await status(c);
    expect(st.staging).toEqual([expect.objectContaining({ fill: 'complete', rejected: expect.objectContaining({ reason: expect.stringMatching(/sync-verify-command failed/) }) })]);
    const kept = st.staging[0]?.tx as string;

    // Upstream moves on to C3: pkg-2 gone again, pkg-3 added.
    const c3 = await commitOnUpstream(dir, (work) =>
      Promise.all([fs.rm(path.join(work, 'cat-a/pkg/pkg-2.ebuild')), fs.writeFile(path.join(work, 'cat-a/pkg/pkg-3.ebuild'), 'EAPI=8\n')]),
    );
    const next = await runCli(['-c', c, 'sync', '--json']);
    expect(next.code).toBe(0);
    expect((JSON.parse(next.stdout) as { results: Array<{ resumed: boolean }> }).results[0]?.resumed).toBe(false);
    expect(await locationDigest(dir)).toBe(await c3.expected());
    // The rejected tree is left alone for inspection, a day from its rejection.
    st = await status(c);
    expect(st.staging.map((s) => s.tx)).toEqual([kept]);
    await runCli(['-c', c, 'gc']);
    expect((await status(c)).staging.map((s) => s.tx)).toEqual([kept]);
    const record = path.join(dir, 'store', 'reposnap', 'staging', `${kept}.json`);
    const info = JSON.parse(await fs.readFile(record, 'utf8')) as { rejected: { at: string } };
    info.rejected.at = new Date(Date.now() - 25 * 3600_000).toISOString();
    await fs.writeFile(record, JSON.stringify(info));
    await runCli(['-c', c, 'gc']);
    expect((await status(c)).staging).toEqual([]);
  });

  it('git: an update killed on its way to C2 resumes toward C3 with a full checkout, not the C1 -> C3 difference', async () => {
    for (const point of ['fill-midway', 'filled']) {
      const { dir, c } = await syncedToA('git', 'git-c3-kill');
      expect((await interruptAt(['-c', c, 'sync'], point, 'SIGKILL')).reached).toBe(true);
      await idle(c);
      expect((await status(c)).staging).toEqual([expect.objectContaining({ fill: point === 'filled' ? 'complete' : 'partial', heading: expect.stringMatching(/^[0-9a-f]{40}$/) })]);
      const c3 = await commitOnUpstream(dir, (work) => fs.rm(path.join(work, 'cat-a/pkg/pkg-2.ebuild')));
      const next = await runCli(['-c', c, 'sync', '--json']);
      expect(next.code).toBe(0);
      expect((JSON.parse(next.stdout) as { results: Array<{ resumed: boolean }> }).results[0]?.resumed).toBe(true);
      expect(await locationDigest(dir)).toBe(await c3.expected());
    }
  });

  it('git: a fill killed while applying a difference leaves a temporary that the resumed update removes', async () => {
    const { dir, up, c } = await syncedToA('git', 'git-tmp');
    expect((await interruptAt(['-c', c, 'sync'], 'fill-midway', 'SIGKILL')).reached).toBe(true);
    await idle(c);
    const stagingRoot = path.join(dir, 'store', 'reposnap', 'staging');
    const tx = (await status(c)).staging[0]?.tx as string;
    const temporaries = (await fs.readdir(path.join(stagingRoot, tx), { recursive: true })).filter((n) => /\.reposnap-tmp-\d+-[0-9a-f]{8}$/.test(String(n)));
    expect(temporaries.length).toBe(1);

    expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
    const published = await fs.realpath(path.join(dir, 'repo'));
    expect((await fs.readdir(published, { recursive: true })).filter((n) => String(n).includes('.reposnap-'))).toEqual([]);
    expect(await locationDigest(dir)).toBe(await up.expected());
  });

  it('a staging tree whose clone never finished is not resumed', async () => {
    const { dir, up, c } = await syncedToA('git', 'cloning', 'sync-rcu-prepare-staging = no');
    // A clone cut short: half the tree, and a record that says so.
    const stagingRoot = path.join(dir, 'store', 'reposnap', 'staging');
    await fs.mkdir(path.join(stagingRoot, 'cut-1-aaaaaa', 'metadata'), { recursive: true });
    await fs.writeFile(
      path.join(stagingRoot, 'cut-1-aaaaaa.json'),
      JSON.stringify({ tx: 'cut-1-aaaaaa', base: 1, backend: 'hardlink', createdAt: new Date().toISOString(), pid: 1, state: 'cloning', fill: 'none' }),
    );
    const next = await runCli(['-c', c, 'sync', '--json']);
    expect(next.code).toBe(0);
    expect((JSON.parse(next.stdout) as { results: Array<{ resumed: boolean }> }).results[0]?.resumed).toBe(false);
    expect(await locationDigest(dir)).toBe(await up.expected());
    expect(await fs.readdir(stagingRoot)).toEqual([]);
  });
});

/** Commit a change on top of what the git upstream serves now; returns it for expected(). */
async function commitOnUpstream(dir: string, change: (work: string) => Promise<unknown>): Promise<{ expected: () => Promise<string> }> {
  const { execFileSync } = await import('node:child_process');
  const work = path.join(dir, 'upstream');
  const bare = path.join(dir, 'up.git');
  const g = (...args: string[]): string =>
    execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.org', ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, HOME: work } }).trim();
  g('reset', '-q', '--hard', execFileSync('git', ['--git-dir', bare, 'rev-parse', 'refs/heads/main'], { encoding: 'utf8' }).trim());
  await change(work);
  g('add', '-A');
  g('commit', '-qm', 'next');
  const rev = g('rev-parse', 'HEAD');
  g('push', '-q', '-f', bare, 'HEAD:refs/heads/main');
  return {
    async expected() {
      const out = path.join(dir, `checkout-${rev.slice(0, 8)}`);
      await fs.mkdir(out, { recursive: true });
      execFileSync('sh', ['-c', `git --git-dir='${bare}' archive ${rev} | tar -x --no-same-permissions -C '${out}'`]);
      return digest(out);
    },
  };
}
