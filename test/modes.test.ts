/**
 * The storage modes Portage chooses when sync-rcu is off: quarantine
 * (sync-allow-hardlinks = yes) and in-place.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Repos } from '../src/repos.js';
import { readTree, runCli, tmpdir, writeConf, writeTree, type TreeEntry } from './helpers.js';

const QUARANTINE = '.tmp-unverified-download-quarantine';

/** The location's content: its tree without the modification stamp files. */
async function content(dir: string): Promise<Record<string, TreeEntry>> {
  const t = await readTree(dir);
  expect(t['.modification_time']?.type).toBe('file'); // every sync is stamped
  delete t['.modification_time'];
  delete t['.modification_time.lock'];
  return t;
}

function conf(dir: string, type: string, extra = ''): string {
  return `[test]\nlocation = ${dir}/repo\nsync-type = ${type}\nsync-uri = ${dir}/upstream\n${extra}\n`;
}

describe('quarantine mode', () => {
  for (const type of ['local', 'rsync']) {
    it(`builds the update in a hardlinked quarantine and brings it into place (${type})`, async () => {
      const dir = tmpdir();
      const up = path.join(dir, 'upstream');
      await writeTree(up, { 'a/one': '1\n', 'b/two': '2\n', 'c/three': '3\n', link: { symlink: 'a' } });
      const repo = Repos.fromText(conf(dir, type), path.join(dir, 'repos.conf')).get('test');
      expect(repo.config.mode).toBe('quarantine');
      const r1 = await repo.sync();
      expect(r1.outcome).toBe('updated');
      expect(await content(path.join(dir, 'repo'))).toEqual(await readTree(up));
      expect((await fs.lstat(path.join(dir, 'repo'))).isDirectory()).toBe(true);

      const keptIno = (await fs.stat(path.join(dir, 'repo', 'c/three'))).ino;
      await fs.writeFile(path.join(up, 'a/one'), 'one, longer\n');
      await fs.rm(path.join(up, 'b/two'));
      const r2 = await repo.sync();
      expect(r2.outcome).toBe('updated');
      expect(await content(path.join(dir, 'repo'))).toEqual(await readTree(up));
      // Unchanged files are left alone, not rewritten.
      expect((await fs.stat(path.join(dir, 'repo', 'c/three'))).ino).toBe(keptIno);
      await expect(fs.lstat(path.join(dir, 'repo', QUARANTINE))).rejects.toThrow();

      expect((await repo.sync()).outcome).toBe('up-to-date');
    });
  }

  it('a failed download never reaches the location', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'a/one': '1\n' });
    const repo = Repos.fromText(conf(dir, 'local'), path.join(dir, 'repos.conf')).get('test');
    await repo.sync();
    await writeTree(up, { 'a/two': '2\n' });
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [path.join(up, 'zz-fifo')]);
    await expect(repo.sync()).rejects.toThrow(/refusing special file/);
    expect(await content(path.join(dir, 'repo'))).toEqual({ a: { type: 'dir', mode: 0o755 }, 'a/one': { type: 'file', content: '1\n', mode: 0o644 } });
  });

  it('refuses to update through a location that is an RCU symlink', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: 'x\n' });
    await fs.mkdir(path.join(dir, 'elsewhere'));
    await fs.symlink(path.join(dir, 'elsewhere'), path.join(dir, 'repo'));
    const c = await writeConf(dir, conf(dir, 'local'));
    const r = await runCli(['-c', c, 'sync']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/location .* is a symlink \(an RCU store\?\)/);
  });
});

describe('in-place mode', () => {
  it('writes straight into the location and deletes what upstream removed', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'a/one': '1\n', 'b/two': '2\n' });
    const c = await writeConf(dir, conf(dir, 'rsync', 'sync-allow-hardlinks = no'));
    const r1 = await runCli(['-c', c, 'sync']);
    expect(r1.code).toBe(0);
    expect(r1.stdout).toMatch(/test: updated \(in-place\)/);
    await fs.rm(path.join(up, 'b'), { recursive: true });
    expect((await runCli(['-c', c, 'sync'])).code).toBe(0);
    expect(await content(path.join(dir, 'repo'))).toEqual(await readTree(up));
    expect((await runCli(['-c', c, 'sync'])).stdout).toMatch(/test: up to date/);
  });
});

describe("local data in a plain location (Portage's rsync excludes /distfiles, /local and /packages)", () => {
  it.each([
    ['in-place', 'rsync', 'sync-allow-hardlinks = no'],
    ['in-place', 'local', 'sync-allow-hardlinks = no'],
    ['quarantine', 'rsync', ''],
    ['quarantine', 'local', ''],
  ])('%s mode with the %s source keeps an old DISTDIR and PKGDIR under the location', async (_mode, type, extra) => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, { 'a/one': '1\n', 'profiles/repo_name': 'test\n' });
    // A location as an old /usr/portage has it: downloads and binaries inside.
    await writeTree(path.join(dir, 'repo'), {
      'a/one': 'old\n',
      'distfiles/foo-1.tar.gz': 'downloaded\n',
      'packages/app-misc/foo-1.tbz2': 'built\n',
      'local/notes': 'mine\n',
    });
    const c = await writeConf(dir, conf(dir, type, extra));
    const r = await runCli(['-c', c, 'sync']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const t = await readTree(path.join(dir, 'repo'));
    expect(t['a/one']?.content).toBe('1\n');
    expect(t['distfiles/foo-1.tar.gz']?.content).toBe('downloaded\n');
    expect(t['packages/app-misc/foo-1.tbz2']?.content).toBe('built\n');
    expect(t['local/notes']?.content).toBe('mine\n');
  });
});
