/**
 * The rsync source with the real rsync: local paths, file:// URIs, an rsync
 * daemon on 127.0.0.1, refused options and rsync's failures.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import type { SyncReport } from '../src/repository.js';
import type { SourceProgress } from '../src/sources/source.js';
import { freePort, isRoot, rcuConf, readTree, runCli, sleep, stopChildren, tmpdir, waitForPort, writeConf, writeTree } from './helpers.js';
import { interruptAt } from '../torture/lib.js';
import { rsyncTransport } from '../src/sources/rsync.js';

const daemons: ChildProcess[] = [];
afterAll(() => stopChildren(daemons));

/** Start `rsync --daemon` on 127.0.0.1 serving `dir` as module "repo". */
async function startDaemon(dir: string, work: string): Promise<number> {
  const port = await freePort();
  const conf = await writeConf(
    work,
    `pid file = ${work}/rsyncd.pid
log file = ${work}/rsyncd.log
use chroot = ${isRoot ? 'yes' : 'no'}
${isRoot ? 'uid = root\ngid = root\n' : ''}
[repo]
path = ${dir}
read only = yes
`,
    'rsyncd.conf',
  );
  const d = spawn('rsync', ['--daemon', '--no-detach', `--address=127.0.0.1`, `--port=${port}`, `--config=${conf}`], { stdio: 'ignore' });
  daemons.push(d);
  await waitForPort(port);
  return port;
}

async function upstream(dir: string): Promise<string> {
  const up = path.join(dir, 'upstream');
  await writeTree(up, {
    'metadata/timestamp.chk': 'T1\n',
    'cat/pkg/pkg-1.ebuild': 'one\n',
    'cat/pkg/Manifest': 'DIST x\n',
    'link': { symlink: 'cat/pkg' },
    'exec.sh': { content: '#!/bin/sh\n', mode: 0o755 },
  });
  return up;
}

/** A tree read back by bytes: hex name path -> type, mode, owner, content or target. */
async function readTreeBytes(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: Buffer, rel: string): Promise<void> => {
    for (const name of await fs.readdir(dir, { encoding: 'buffer' })) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('hex')}`;
      const st = await fs.lstat(p);
      const head = `${st.mode.toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `${head} dir`;
        await walk(p, r);
      } else if (st.isSymbolicLink()) out[r] = `${head} -> ${(await fs.readlink(p, { encoding: 'buffer' })).toString('hex')}`;
      else out[r] = `${head} ${(await fs.readFile(p)).toString('hex')}`;
    }
  };
  await walk(Buffer.from(root), '');
  return out;
}

describe('rsync source: plan, then apply', () => {
  it('applies exactly what the plan lists, odd names and changes of type included, and leaves the old snapshot as it was', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const odd = ['new\nline', 'back\\#134slash', 'trailing space ', '*deleting fake', '-dash', 'tab\there'];
    for (const n of odd) await fs.writeFile(path.join(up, n), `${n}\n`);
    const latin1 = Buffer.concat([Buffer.from(up), Buffer.from('/caf'), Buffer.from([0xe9])]);
    await fs.writeFile(latin1, 'not utf-8\n');
    await writeTree(up, { 'dir2file/a/b': 'deep\n', 'file2dir': 'was a file\n', 'link2dir': { symlink: 'cat' }, 'gone/x/y': 'y\n' });
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink\nsync-rcu-spare-snapshots = 5', 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    await repo.sync();
    const first = await readTreeBytes(await repo.currentPath());
    expect(first).toEqual(await readTreeBytes(up));

    for (const n of odd) await fs.writeFile(path.join(up, n), `${n} changed\n`);
    await fs.chmod(path.join(up, 'new\nline'), 0o600);
    await fs.writeFile(latin1, 'still not utf-8, longer\n');
    await fs.rm(path.join(up, 'dir2file'), { recursive: true });
    await fs.writeFile(path.join(up, 'dir2file'), 'now a file\n');
    await fs.rm(path.join(up, 'file2dir'));
    await fs.rm(path.join(up, 'link2dir'));
    await writeTree(up, { 'file2dir/inside': 'i\n', 'link2dir/inside': 'j\n', 'brand/new/dir/f': 'f\n' });
    await fs.rm(path.join(up, 'gone'), { recursive: true });
    await fs.chmod(path.join(up, 'exec.sh'), 0o700);
    // A file gone from a folder whose own time changed too (listed for its time only).
    await fs.rm(path.join(up, 'cat/pkg/Manifest'));
    await fs.utimes(path.join(up, 'cat/pkg'), new Date('2021-02-03'), new Date('2021-02-03'));
    // The top's own mode and time.
    await fs.chmod(up, 0o750);
    await fs.utimes(up, new Date('2022-03-04'), new Date('2022-03-04'));
    const r = await repo.sync();
    expect(r.outcome).toBe('updated');
    expect(r.warnings).toEqual([]);
    expect(await readTreeBytes(await repo.currentPath())).toEqual(await readTreeBytes(up));
    expect(await readTreeBytes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(first);
    // (The top's time is the commit's: see store/commit.ts.)
    expect((await fs.stat(await repo.currentPath())).mode & 0o777).toBe(0o750);
    expect((await fs.stat(path.join(await repo.currentPath(), 'cat/pkg'))).mtimeMs).toBe(new Date('2021-02-03').getTime());
    // What the plan did not list is not written again: still the first snapshot's inode.
    const ino = async (root: string) => (await fs.stat(path.join(root, 'metadata/timestamp.chk'))).ino;
    expect(await ino(await repo.currentPath())).toBe(await ino(path.join(dir, 'store', 'snapshots', '1')));
    expect((await repo.sync()).outcome).toBe('up-to-date');
  });
});

/**
 * Give every entry under `root` an mtime in the past, a different whole
 * second each (rsync takes times in the same second as equal, and a tree
 * written just now would hide a folder time left behind).
 */
async function ageTree(root: string): Promise<void> {
  let n = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      const t = new Date(Date.UTC(2020, 0, 1) + 1000 * n++);
      await fs.lutimes(p, t, t);
    }
  };
  await walk(root);
}

/** Every entry's mtime to the nanosecond (the top's is the commit's: left out). */
async function mtimes(root: string): Promise<Record<string, bigint>> {
  const out: Record<string, bigint> = {};
  const walk = async (dir: Buffer, rel: string): Promise<void> => {
    for (const name of await fs.readdir(dir, { encoding: 'buffer' })) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('hex')}`;
      const st = await fs.lstat(p, { bigint: true });
      out[r] = st.mtimeNs;
      if (st.isDirectory()) await walk(p, r);
    }
  };
  await walk(Buffer.from(root), '');
  return out;
}

describe('rsync source: applying a plan while it grows', () => {
  /**
   * rsync on PATH behind a wrapper that slows a dry run's output to a line
   * every 20 ms (a plan that takes a while, as on a big tree), writes each
   * run's kind down, and ends a dry run told to stop (SIGTERM) with exit
   * 20, as rsync does; with a `fail-plan` file present, the next dry run
   * stops with exit 24 (files vanished) after 20 lines; with a `fail-apply`
   * file, every apply from the second on fails with exit 23.
   */
  async function slowPlanRsync(dir: string): Promise<{ real: string; runs: () => Promise<string[]>; restore: () => void }> {
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    const real = execFileSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).trim();
    await fs.writeFile(
      path.join(bin, 'rsync'),
      `#!/bin/bash
case " $* " in
  *" --dry-run "*)
    echo plan >> ${dir}/runs
    cut=cat
    if [ -e ${dir}/fail-plan ]; then
      rm ${dir}/fail-plan
      cut="head -n 20"
    fi
    # Stopped, it ends as rsync does on SIGTERM: exit 20, at once (a
    # trap runs during wait, not during a pipeline in the foreground).
    trap 'pkill -TERM -P $!; exit 20' TERM
    (set -o pipefail; ${real} "$@" | $cut | while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.02; done) &
    wait $!
    status=$?
    [ "$cut" = cat ] || exit 24
    exit $status ;;
  *" --files-from=- "*)
    echo apply >> ${dir}/runs
    if [ -e ${dir}/fail-apply ] && [ "$(grep -c apply ${dir}/runs)" -ge 2 ]; then
      cat > /dev/null
      echo "rsync: [receiver] simulated failure" >&2
      exit 23
    fi ;;
  *) echo other >> ${dir}/runs ;;
esac
${real} "$@"
status=$?
case " $* " in *" --files-from=- "*) echo applied >> ${dir}/applied ;; esac
exit $status
`,
      { mode: 0o755 },
    );
    const saved = { path: process.env.PATH, batch: process.env.REPOSNAP_APPLY_BATCH };
    process.env.PATH = `${bin}:${saved.path ?? ''}`;
    process.env.REPOSNAP_APPLY_BATCH = process.env.TEST_BATCH ?? '1';
    return {
      real,
      runs: async () => {
        const text = await fs.readFile(path.join(dir, 'runs'), 'utf8').catch(() => '');
        await fs.rm(path.join(dir, 'runs'), { force: true });
        return text.trim().split('\n').filter((l) => l !== '');
      },
      restore: () => {
        process.env.PATH = saved.path;
        if (saved.batch === undefined) delete process.env.REPOSNAP_APPLY_BATCH;
        else process.env.REPOSNAP_APPLY_BATCH = saved.batch;
      },
    };
  }

  /** No process (the dry run, an apply) still reads `up`, waiting up to 10 s for one on its way out. */
  async function expectNoRsyncOf(up: string): Promise<void> {
    const running = (): boolean => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).includes(up);
    for (let i = 0; i < 500 && running(); i++) await sleep(20);
    expect(running()).toBe(false);
  }

  /** The next sync resumes the interrupted one and ends with exactly upstream, times included. */
  async function expectResumedToUpstream(repo: ReturnType<Repos['get']>, up: string): Promise<void> {
    const r = await repo.sync();
    expect(r.outcome).toBe('updated');
    expect(r.resumed).toBe(true);
    expect(await readTreeBytes(await repo.currentPath())).toEqual(await readTreeBytes(up));
    expect(await mtimes(await repo.currentPath())).toEqual(await mtimes(up));
  }

  /** Upstream with a bit of everything, and then changed in every way an apply has to get right. */
  async function changingUpstream(dir: string): Promise<{ up: string; change: () => Promise<void> }> {
    const up = await upstream(dir);
    const many: Record<string, string> = {};
    for (let i = 0; i < 30; i++) many[`cat${i % 3}/pkg${i}/pkg${i}-1.ebuild`] = `v1 ${i}\n`;
    await writeTree(up, { ...many, 'dir2file/a/b': 'deep\n', 'file2dir': 'was a file\n', 'link2dir': { symlink: 'cat0' }, 'gone/x/y': 'y\n', 'z-late/keep': 'k\n' });
    const change = async (): Promise<void> => {
      for (let i = 0; i < 30; i += 2) await fs.writeFile(path.join(up, `cat${i % 3}/pkg${i}/pkg${i}-1.ebuild`), `v2 ${i} longer\n`);
      for (let i = 1; i < 30; i += 6) await fs.rm(path.join(up, `cat${i % 3}/pkg${i}`), { recursive: true });
      await writeTree(up, { 'cat1/new-pkg/new-pkg-1.ebuild': 'new\n', 'brand/new/dir/f': 'f\n', 'z-late/added': 'late\n' });
      await fs.rm(path.join(up, 'dir2file'), { recursive: true });
      await fs.writeFile(path.join(up, 'dir2file'), 'now a file\n');
      await fs.rm(path.join(up, 'file2dir'));
      await fs.rm(path.join(up, 'link2dir'));
      await writeTree(up, { 'file2dir/inside': 'i\n', 'link2dir/inside': 'j\n' });
      await fs.rm(path.join(up, 'gone'), { recursive: true });
      await fs.chmod(path.join(up, 'exec.sh'), 0o700);
      if (isRoot) await fs.lchown(path.join(up, 'link'), 1, 1);
      await ageTree(up);
    };
    await ageTree(up);
    return { up, change };
  }

  it('applies it in parts while the dry run goes on, and ends with exactly upstream, times included', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink\nsync-rcu-spare-snapshots = 5', 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    const rsync = await slowPlanRsync(dir);
    try {
      await repo.sync();
      const first = await readTreeBytes(await repo.currentPath());
      const firstTimes = await mtimes(await repo.currentPath());
      await rsync.runs();
      await change();
      const r = await repo.sync();
      expect(r.outcome).toBe('updated');
      expect(r.prepared).toBe(true);
      expect(r.warnings).toEqual([]);
      const runs = await rsync.runs();
      // One plan, applied in several parts.
      expect(runs.filter((k) => k === 'plan')).toHaveLength(1);
      if (!process.env.TEST_BATCH) expect(runs.filter((k) => k === 'apply').length).toBeGreaterThan(2);
      expect(await readTreeBytes(await repo.currentPath())).toEqual(await readTreeBytes(up));
      // Folder times too: a later part writing into a folder does not leave its time behind.
      expect(await mtimes(await repo.currentPath())).toEqual(await mtimes(up));
      expect(r.changes).toMatchObject({ added: expect.any(Number), deleted: expect.any(Number) });
      // The snapshot before is as it was, down to the times.
      expect(await readTreeBytes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(first);
      expect(await mtimes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(firstTimes);
      expect((await repo.sync()).outcome).toBe('up-to-date');
    } finally {
      rsync.restore();
    }
  });

  it('finishes with a plan of the target itself when the dry run fails part way, and ends with exactly upstream', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink\nsync-rcu-spare-snapshots = 5', 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    const rsync = await slowPlanRsync(dir);
    try {
      await repo.sync();
      const first = await readTreeBytes(await repo.currentPath());
      await rsync.runs();
      await change();
      await fs.writeFile(path.join(dir, 'fail-plan'), '');
      const r = await repo.sync();
      expect(r.outcome).toBe('updated');
      const runs = await rsync.runs();
      // The first plan, cut short after a part was applied; the second, of the target.
      expect(runs.filter((k) => k === 'plan')).toHaveLength(2);
      expect(runs.indexOf('apply')).toBeLessThan(runs.lastIndexOf('plan'));
      expect(await readTreeBytes(await repo.currentPath())).toEqual(await readTreeBytes(up));
      expect(await mtimes(await repo.currentPath())).toEqual(await mtimes(up));
      expect(await readTreeBytes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(first);
    } finally {
      rsync.restore();
    }
  });

  it('stops the dry run and keeps the previous snapshot when a part fails', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink', 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    const rsync = await slowPlanRsync(dir);
    try {
      await repo.sync();
      const first = await readTreeBytes(await repo.currentPath());
      await change();
      await fs.writeFile(path.join(dir, 'fail-apply'), '');
      await rsync.runs();
      await expect(repo.sync()).rejects.toThrow(/rsync failed \(exit 23.*simulated failure/);
      // It failed at the second part, with the dry run still going: stopped, not waited for.
      expect(await rsync.runs()).toEqual(['plan', 'apply', 'apply']);
      await expectNoRsyncOf(up);
      expect(await readTreeBytes(await repo.currentPath())).toEqual(first);
      // The next sync resumes what was written, and ends with exactly upstream.
      await fs.rm(path.join(dir, 'fail-apply'));
      await expectResumedToUpstream(repo, up);
    } finally {
      rsync.restore();
    }
  });
  it('killed (SIGKILL) right after its first part is written, the next sync resumes and ends with exactly upstream, times included', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const text = rcuConf(dir, 'sync-rcu-backend = hardlink\nsync-rcu-spare-snapshots = 5', 'rsync', up);
    const conf = await writeConf(dir, text);
    const repo = Repos.fromText(text, conf).get('test');
    const rsync = await slowPlanRsync(dir);
    try {
      await repo.sync();
      const first = await readTreeBytes(await repo.currentPath());
      const firstTimes = await mtimes(await repo.currentPath());
      await change();
      await rsync.runs();
      const cut = await interruptAt(['-c', conf, 'sync'], 'fill-midway', 'SIGKILL');
      expect(cut.reached).toBe(true);
      // Cut in the first part, with the plan still growing.
      expect(await rsync.runs()).toEqual(['plan', 'apply']);
      expect(await readTreeBytes(await repo.currentPath())).toEqual(first);
      // The dry run died with its parent.
      await expectNoRsyncOf(up);
      await expectResumedToUpstream(repo, up);
      expect(await readTreeBytes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(first);
      expect(await mtimes(path.join(dir, 'store', 'snapshots', '1'))).toEqual(firstTimes);
      expect((await repo.sync()).outcome).toBe('up-to-date');
    } finally {
      rsync.restore();
    }
  });

  it('over ssh: applies the plan once, not in parts (each part would be a login), and ends with exactly upstream', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const rsync = await slowPlanRsync(dir);
    // ssh on PATH that logs in nowhere: it counts the connections and runs the remote rsync here.
    await fs.writeFile(
      path.join(dir, 'bin', 'ssh'),
      `#!/bin/sh\nwhile [ "\${1#-}" != "$1" ]; do case "$1" in -p|-l|-o) shift 2 ;; *) shift ;; esac; done\necho login >> ${dir}/logins\nshift 2\nexec ${rsync.real} "$@"\n`,
      { mode: 0o755 },
    );
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink', 'rsync', `ssh://localhost${up}`), path.join(dir, 'repos.conf')).get('test');
    try {
      await repo.sync();
      await change();
      await rsync.runs();
      await fs.rm(path.join(dir, 'logins'), { force: true });
      const r = await repo.sync();
      expect(r.outcome).toBe('updated');
      expect((await rsync.runs()).filter((k) => k !== 'other')).toEqual(['plan', 'apply']);
      // The plan, the apply, and the top folder's attributes at most.
      const logins = (await fs.readFile(path.join(dir, 'logins'), 'utf8')).trim().split('\n');
      expect(logins.length).toBeLessThanOrEqual(3);
      expect(await readTreeBytes(await repo.currentPath())).toEqual(await readTreeBytes(up));
      expect(await mtimes(await repo.currentPath())).toEqual(await mtimes(up));
    } finally {
      rsync.restore();
    }
  });

  it('stops at once when the sync is aborted between parts: no second plan, the previous snapshot kept, and the next sync ends with exactly upstream', async () => {
    const dir = tmpdir();
    const { up, change } = await changingUpstream(dir);
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink', 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    const rsync = await slowPlanRsync(dir);
    try {
      await repo.sync();
      const first = await readTreeBytes(await repo.currentPath());
      await change();
      await rsync.runs();
      process.env.REPOSNAP_APPLY_BATCH = '10';
      const ac = new AbortController();
      const syncing = repo.sync({ signal: ac.signal }).catch((e: unknown) => e);
      // Abort once the first part has been applied, while the dry run still
      // goes on and no apply runs (parts of 10 lines, a line every 20 ms).
      for (let i = 0; i < 1000; i++) {
        if (await fs.stat(path.join(dir, 'applied')).then(() => true, () => false)) break;
        await sleep(5);
      }
      ac.abort();
      const err = await syncing;
      expect(err).toBeInstanceOf(Error);
      expect((err as { code?: string }).code).toBe('EABORTED');
      // The dry run was stopped and nothing else started: not a plan of the
      // target. The sync waited for its children: none is left, at once.
      const runs = await rsync.runs();
      expect(runs.filter((k) => k === 'plan')).toHaveLength(1);
      expect(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })).not.toContain(up);
      expect(await readTreeBytes(await repo.currentPath())).toEqual(first);
      await expectResumedToUpstream(repo, up);
    } finally {
      rsync.restore();
    }
  });
});

describe('rsync source: how upstream is reached', () => {
  it('reads the source as rsync does: daemon, remote shell or this machine', () => {
    const cases: Array<[string, ReturnType<typeof rsyncTransport>]> = [
      ['rsync://mirror.example/gentoo-portage/', 'daemon'],
      ['RSYNC://mirror.example/gentoo-portage/', 'daemon'],
      ['mirror.example::gentoo-portage/', 'daemon'],
      ['user@mirror.example::gentoo-portage/', 'daemon'],
      ['[2001:db8::1]::gentoo-portage/', 'daemon'],
      ['mirror.example:/srv/gentoo/', 'shell'],
      ['user@mirror.example:/srv/gentoo/', 'shell'],
      ['[::1]:/srv/gentoo/', 'shell'],
      ['user@[fe80::1%eth0]:/srv/gentoo/', 'shell'],
      ['a:b', 'shell'],
      ['/srv/gentoo/', 'local'],
      ['./a:b', 'local'],
      ['a/b:c', 'local'],
      [':path', 'local'],
      ['[::1/srv', 'local'],
    ];
    expect(cases.map(([arg]) => [arg, rsyncTransport(arg)])).toEqual(cases);
  });
});

describe('rsync source: progress', () => {
  /** Every 'fetch' event of a sync of `repo`, and its report. */
  async function fetchEvents(repo: ReturnType<Repos['get']>): Promise<{ events: SourceProgress[]; report: SyncReport }> {
    const events: SourceProgress[] = [];
    const report = await repo.sync({ onProgress: (e) => (e.phase === 'fetch' ? events.push(e) : undefined) });
    return { events, report };
  }

  it('reports the bytes written as they are, against the plan\'s total, which is what rsync says it wrote', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    const big = (n: number, c: string): string => c.repeat(n);
    await writeTree(up, {
      'metadata/timestamp.chk': 'T1\n',
      'keep': 'unchanged\n',
      'mode-only': 'same content\n',
      'gone': 'bye\n',
      'link': { symlink: 'keep' },
      ...Object.fromEntries([1, 2, 3, 4, 5].map((i) => [`big/f${i}`, big(100_000 + i, 'a')])),
    });
    // Slow enough that the files come one by one, a tenth of a second or more apart. With
    // --progress, which would have rsync print bare names if it printed items after their transfer.
    const repo = Repos.fromText(rcuConf(dir, 'sync-rcu-backend = hardlink\nsync-rsync-extra-opts = --bwlimit=1000 --progress', 'rsync', up), path.join(dir, 'repos.conf')).get('test');

    // The first sync is one plain rsync (no plan): bytes, and no total.
    const first = await fetchEvents(repo);
    const all = 3 + 10 + 13 + 4 + [1, 2, 3, 4, 5].reduce((n, i) => n + 100_000 + i, 0);
    expect(first.events.at(-1)).toMatchObject({ bytes: all });
    expect(first.events.every((e) => e.totalBytes === undefined)).toBe(true);
    expect(first.report.changes.bytesTransferred).toBe(all);

    // Changes of content and of length, a new file, a mode alone, a deletion, a new symlink;
    // a new file named as an item line would read (with or without the bytes sent).
    const sizes = { 'metadata/timestamp.chk': 7, 'big/f1': 150_000, 'big/f2': 90_000, 'big/f3': 120_000, 'big/new': 110_000, '>f+++++++++ 9 0 spoof': 11 };
    for (const [p, n] of Object.entries(sizes)) await fs.writeFile(path.join(up, p), big(n, 'b'));
    await fs.chmod(path.join(up, 'mode-only'), 0o600);
    await fs.rm(path.join(up, 'gone'));
    await fs.symlink('big', path.join(up, 'link2'));
    const second = await fetchEvents(repo);
    expect(second.report.outcome).toBe('updated');
    expect(second.report.warnings).toEqual([]);
    // The apply writes the file whose mode alone changed anew (--ignore-times): its bytes count.
    const total = Object.values(sizes).reduce((a, b) => a + b, 0) + 13;
    const counted = second.events.filter((e) => e.bytes !== undefined);
    expect(counted.length).toBeGreaterThan(0);
    for (const e of counted) {
      expect(e.totalBytes).toBe(total);
      expect(e.bytes).toBeLessThanOrEqual(total);
    }
    expect(counted.map((e) => e.bytes)).toEqual(counted.map((e) => e.bytes).sort((a, b) => (a ?? 0) - (b ?? 0)));
    expect(counted.at(-1)?.bytes).toBe(total);
    // Seen moving, file by file, not only at the end.
    const between = new Set(counted.map((e) => e.bytes).filter((b) => b !== undefined && b > 0 && b < total));
    expect(between.size).toBeGreaterThanOrEqual(2);
    expect(second.report.changes.bytesTransferred).toBe(total);
    expect(await readTree(await repo.currentPath())).toEqual(await readTree(up));
  });
});

describe('rsync source', () => {
  for (const form of ['plain path', 'file:// URI']) {
    it(`syncs from a ${form}, detects changes and deletions, and reports no-change`, async () => {
      const dir = tmpdir();
      const up = await upstream(dir);
      const uri = form === 'plain path' ? up : `file://${up}`;
      const repo = Repos.fromText(rcuConf(dir, '', 'rsync', uri), path.join(dir, 'repos.conf')).get('test');
      const r1 = await repo.sync();
      expect(r1.snapshot?.id).toBe(1);
      expect(await readTree(await repo.currentPath())).toEqual(await readTree(up));
      expect(r1.tree.files).toBe(5); // four files and a symlink

      expect((await repo.sync()).outcome).toBe('up-to-date');

      await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2-longer\n');
      await fs.rm(path.join(up, 'cat/pkg/Manifest'));
      const r3 = await repo.sync();
      expect(r3.outcome).toBe('updated');
      expect(r3.snapshot?.id).toBe(2);
      expect(r3.changes.deleted).toBe(1);
      expect(await readTree(await repo.currentPath())).toEqual(await readTree(up));
      // The previous snapshot still has the old content (rsync wrote a new file).
      const s1 = path.join(dir, 'store', 'snapshots', '1');
      expect(await fs.readFile(path.join(s1, 'metadata/timestamp.chk'), 'utf8')).toBe('T1\n');
      expect(await fs.readFile(path.join(s1, 'cat/pkg/Manifest'), 'utf8')).toBe('DIST x\n');
    });
  }

  it('syncs from an rsync daemon on 127.0.0.1', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const port = await startDaemon(up, dir);
    const repo = Repos.fromText(rcuConf(dir, '', 'rsync', `rsync://127.0.0.1:${port}/repo`), path.join(dir, 'repos.conf')).get('test');
    const r = await repo.sync();
    expect(r.snapshot?.id).toBe(1);
    expect(await readTree(await repo.currentPath())).toEqual(await readTree(up));
    expect((await repo.sync()).outcome).toBe('up-to-date');
    // The plan and the apply read the daemon's items (and their lengths) as a local run's.
    await fs.writeFile(path.join(up, 'cat/pkg/Manifest'), 'DIST x 12345\n');
    const events: SourceProgress[] = [];
    const r2 = await repo.sync({ onProgress: (e) => (e.phase === 'fetch' ? events.push(e) : undefined) });
    expect(r2.changes).toMatchObject({ added: 0, updated: 1, deleted: 0, bytesTransferred: 13 });
    expect(events.at(-1)).toMatchObject({ changed: 1, total: 1, bytes: 13, totalBytes: 13 });
  });

  it('turns off Nagle on daemon connections, unless the user set socket options', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const port = await startDaemon(up, dir);
    // rsync as found on PATH, behind a wrapper that writes down its arguments.
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    const real = execFileSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).trim();
    await fs.writeFile(path.join(bin, 'rsync'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${dir}/argv\nexec ${real} "$@"\n`, { mode: 0o755 });
    const saved = process.env.PATH;
    process.env.PATH = `${bin}:${saved ?? ''}`;
    try {
      const repo = Repos.fromText(rcuConf(dir, '', 'rsync', `rsync://127.0.0.1:${port}/repo`), path.join(dir, 'repos.conf')).get('test');
      expect((await repo.sync()).snapshot?.id).toBe(1);
      const runs = (await fs.readFile(path.join(dir, 'argv'), 'utf8')).trim().split('\n');
      expect(runs.length).toBeGreaterThan(0);
      for (const r of runs) expect(r).toContain('--sockopts=TCP_NODELAY');
      await fs.writeFile(path.join(up, 'more'), 'more\n');
      await fs.rm(path.join(dir, 'argv'));
      const own = Repos.fromText(rcuConf(dir, 'sync-rsync-extra-opts = --sockopts=SO_KEEPALIVE', 'rsync', `rsync://127.0.0.1:${port}/repo`), path.join(dir, 'repos.conf')).get('test');
      expect((await own.sync()).snapshot?.id).toBe(2);
      const mine = (await fs.readFile(path.join(dir, 'argv'), 'utf8')).trim().split('\n');
      for (const r of mine) {
        expect(r).toContain('--sockopts=SO_KEEPALIVE');
        expect(r).not.toContain('TCP_NODELAY');
      }
      expect(await readTree(await own.currentPath())).toEqual(await readTree(up));
    } finally {
      process.env.PATH = saved;
    }
  });

  it('fails clearly when the daemon has no such module, keeping the previous snapshot', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const port = await startDaemon(up, dir);
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', `rsync://127.0.0.1:${port}/repo`));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await fs.writeFile(conf, rcuConf(dir, '', 'rsync', `rsync://127.0.0.1:${port}/nosuchmodule`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^reposnap: repo test: rsync failed \(exit 5: error starting client-server protocol\): .*nosuchmodule/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it('fails clearly when nothing listens at the rsync URI', async () => {
    const dir = tmpdir();
    const port = await freePort();
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', `rsync://127.0.0.1:${port}/repo`));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/repo test: rsync failed \(exit 10: error in socket I\/O\)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    // Nothing was published.
    await expect(fs.lstat(path.join(dir, 'repo'))).rejects.toThrow();
  });

  it('fails clearly on a missing source path', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', path.join(dir, 'nope')));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`repo test: source ${path.join(dir, 'nope')} does not exist`);
  });

  it('fails on unreadable files (rsync exit 23) and commits nothing', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', up));
    // Root reads anything, so the unreadable case runs as nobody on a store it owns.
    const user = isRoot ? { uid: 65534, gid: 65534 } : undefined;
    if (isRoot) {
      await fs.chmod(dir, 0o755);
      await fs.chown(dir, 65534, 65534);
      await fs.chmod(conf, 0o644);
      for (const p of ['upstream', 'upstream/cat', 'upstream/cat/pkg', 'upstream/metadata']) await fs.chown(path.join(dir, p), 65534, 65534);
    }
    const first = await runCli(['-c', conf, 'sync'], user ? { asUser: user } : {});
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    await fs.writeFile(path.join(up, 'secret'), 'x\n');
    await fs.chmod(path.join(up, 'secret'), 0);
    const r = await runCli(['-c', conf, 'sync'], user ? { asUser: user } : {});
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rsync failed \(exit 23: partial transfer due to error.*\): .*secret.*Permission denied/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it('refuses a FIFO upstream (as the local source does) and commits nothing', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', up));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    await new Promise<void>((resolve, reject) => spawn('mkfifo', [path.join(up, 'cat', 'fifo')]).on('close', (c) => (c === 0 ? resolve() : reject(new Error('mkfifo')))));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('reposnap: repo test: refusing special file (device, FIFO or socket) cat/fifo');
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
  });

  it('gives no snapshot entry group or world write permission', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    await fs.chmod(path.join(up, 'cat'), 0o777);
    await fs.writeFile(path.join(up, 'open'), 'x\n', { mode: 0o666 });
    await fs.chmod(path.join(up, 'open'), 0o666);
    const conf = await writeConf(dir, rcuConf(dir, '', 'rsync', up));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect((await fs.stat(path.join(dir, 'repo', 'cat'))).mode & 0o777).toBe(0o755);
    expect((await fs.stat(path.join(dir, 'repo', 'open'))).mode & 0o777).toBe(0o644);
  });

  it('refuses extra options that would write through hardlinks', async () => {
    const dir = tmpdir();
    const conf = await writeConf(dir, rcuConf(dir, 'sync-rsync-extra-opts = --checksum --append-verify', 'rsync', dir));
    const r = await runCli(['-c', conf, 'sync']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/repos\.conf:7: \[test\] sync-rsync-extra-opts: rsync option --checksum changes existing files in place/);
  });

  it('passes sync-rsync-extra-opts to rsync', async () => {
    const dir = tmpdir();
    const up = await upstream(dir);
    const repo = Repos.fromText(rcuConf(dir, "sync-rsync-extra-opts = --exclude='/cat'", 'rsync', up), path.join(dir, 'repos.conf')).get('test');
    await repo.sync();
    const tree = await readTree(await repo.currentPath());
    expect(Object.keys(tree).some((k) => k.startsWith('cat'))).toBe(false);
    expect(tree['metadata/timestamp.chk']).toBeDefined();
  });
});
