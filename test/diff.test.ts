/**
 * `reposnap diff`: what changed between two kept snapshots, + - ~ per entry,
 * as text and as JSON, with clear errors for ids that are not kept.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

describe('reposnap diff', () => {
  it('lists what was added, removed and changed between the previous and the current snapshot', async () => {
    const dir = tmpdir();
    const up = path.join(dir, 'upstream');
    await writeTree(up, {
      'metadata/timestamp.chk': 'T1\n',
      'cat/pkg/pkg-1.ebuild': 'one\n',
      'cat/pkg/Manifest': 'DIST a\n',
      'cat/old/old-1.ebuild': 'old\n',
      'scripts/run.sh': { content: '#!/bin/sh\n', mode: 0o755 },
      'link': { symlink: 'cat/pkg' },
      'was-file': 'f\n',
      'same': 'same\n',
    });
    const conf = await writeConf(dir, rcuConf(dir));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    expect((await runCli(['-c', conf, 'diff', 'test'])).stderr).toMatch(/keeps no snapshot older than 1/);

    await fs.writeFile(path.join(up, 'metadata/timestamp.chk'), 'T2 longer\n');
    await fs.rm(path.join(up, 'cat/old'), { recursive: true });
    await writeTree(up, { 'cat/new/new-1.ebuild': 'new\n' });
    await fs.chmod(path.join(up, 'scripts/run.sh'), 0o700);
    await fs.rm(path.join(up, 'link'));
    await fs.symlink('cat/new', path.join(up, 'link'));
    await fs.rm(path.join(up, 'was-file'));
    await writeTree(up, { 'was-file/inside': 'i\n' });
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);

    const expected = [
      '+ cat/new/',
      '+ cat/new/new-1.ebuild',
      '- cat/old/',
      '- cat/old/old-1.ebuild',
      '~ link',
      '~ metadata/timestamp.chk',
      '~ scripts/run.sh',
      '- was-file',
      '+ was-file/',
      '+ was-file/inside',
    ];
    const r = await runCli(['-c', conf, 'diff', 'test']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(expected);
    expect((await runCli(['-c', conf, 'diff', 'test', '1', '2'])).stdout.trim().split('\n')).toEqual(expected);
    expect((await runCli(['-c', conf, 'diff', 'test', '1'])).stdout.trim().split('\n')).toEqual(expected);
    expect((await runCli(['-c', conf, 'diff', 'test', '2', '2'])).stdout).toMatch(/hold the same tree/);

    const json = (JSON.parse((await runCli(['-c', conf, 'diff', 'test', '--json'])).stdout) as { results: unknown }).results as { from: number; to: number; changes: Array<{ kind: string; type: string; path: string }> };
    expect([json.from, json.to]).toEqual([1, 2]);
    expect(json.changes).toContainEqual({ kind: 'changed', type: 'symlink', path: 'link' });
    expect(json.changes).toContainEqual({ kind: 'added', type: 'dir', path: 'was-file' });
    expect(json.changes).toHaveLength(expected.length);
  });

  it('refuses ids that are not kept snapshots (exit 2, naming what is kept), and repos without snapshots', async () => {
    const dir = tmpdir();
    await writeTree(path.join(dir, 'upstream'), { f: '1\n' });
    const conf = await writeConf(dir, rcuConf(dir));
    expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
    const missing = await runCli(['-c', conf, 'diff', 'test', '7', '1']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/repo test has no snapshot 7 \(kept: 1\)/);
    const bad = await runCli(['-c', conf, 'diff', 'test', 'latest']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/"latest" is not a snapshot id/);

    const plain = await writeConf(dir, `[plain]\nlocation = ${dir}/plain\nsync-type = local\nsync-uri = ${dir}/upstream\n`, 'plain.conf');
    const r = await runCli(['-c', plain, 'diff', 'plain']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not an RCU repository/);
  });
});
