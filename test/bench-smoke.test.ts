/**
 * Keeps the backend benchmark working: its quick version runs here (no
 * timing is asserted; the numbers go to a scratch file, not to docs/).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { overlayUnavailable } from './fs-images.js';
import { ROOT, tmpdir } from './helpers.js';

/**
 * Run a compiled bench script and fail unless it exits 0. Asynchronously: a
 * test worker blocked in execFileSync for minutes misses vitest's messages.
 */
function runScript(args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: 'ignore', timeout: timeoutMs });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited ${code}`))));
  });
}

describe('bench/sync-compare --quick', () => {
  it('runs every scenario on a small tree and writes the table and the targets', async () => {
    const out = path.join(tmpdir(), 'performance.md');
    await runScript(['dist-bench/sync-compare.js', '--quick', '--scales', '0.01', '--out', out], 400_000);
    const md = await fs.readFile(out, 'utf8');
    // The upstream columns, counted at the rsync daemon.
    expect(md).toContain('| peak RSS MB | received KiB | full list passes | connections |');
    // The main rows, for both changes; "(default)" goes to one reposnap row or the other.
    for (const change of ['1%', '0.1%']) {
      for (const row of ["Portage's sync-rcu pipeline", 'in-place rsync \\(tears readers\\)', 'reposnap hardlink, no prepared clone', 'reposnap hardlink, prepared clone']) {
        expect(md).toMatch(new RegExp(`\\| ${change.replace('.', '\\.')} \\| ${row}( \\(default\\))? \\| [\\d.]+ \\|`));
      }
    }
    if (overlayUnavailable() === undefined) {
      for (const row of ['reposnap overlayfs, no prepared clone', 'reposnap overlayfs, prepared clone']) expect(md).toMatch(new RegExp(`\\| 1% \\| ${row}( \\(default\\))? \\| [\\d.]+ \\|`));
    }
    // An in-place rsync is one connection and one full pass of upstream's file list.
    expect(md).toMatch(/\| 1% \| in-place rsync \(tears readers\) \|( [^|]* \|){4} \d+ \| 1 \| 1 \|/);
    for (const row of ["no-op: rsync's own (in place)", 'no-op: reposnap hardlink (git source)', 'no-op: reposnap hardlink (tarball source, 304)']) {
      expect(md).toContain(`| none | ${row} |`);
    }
    expect(md).toMatch(/## Targets/);
    const verification = await fs.readFile(out.replace(/\.md$/, '-verification.md'), 'utf8');
    for (const row of ['reposnap verify --full, 2 jobs', 'incremental verification inside that sync', 'sync of a 1% change, without verification: visible']) {
      expect(verification).toContain(`| ${row} |`);
    }
  }, 400_000);
});

describe('bench/stamp-validation --quick', () => {
  it('runs and reports one stat against stat-every-package', async () => {
    const out = path.join(tmpdir(), 'stamps.md');
    await runScript(['dist-bench/stamp-validation.js', '--quick', '--out', out], 300_000);
    expect(await fs.readFile(out, 'utf8')).toMatch(/\| 1000 \| [\d.]+ \| [\d.]+ \| \d+× \|/);
  }, 300_000);
});

describe('bench/backend-scaling --quick', () => {
  it('runs and writes a table for every backend that works here', async () => {
    const out = path.join(tmpdir(), 'perf.md');
    await runScript(['dist-bench/backend-scaling.js', '--quick', '--out', out], 300_000);
    const md = await fs.readFile(out, 'utf8');
    expect(md).toMatch(/\| filesystem \| backend \| files \| clone ms \| seal ms \| delete ms \|/);
    expect(md).toMatch(/\| hardlink \| 1000 \|/);
    const json = JSON.parse(await fs.readFile(out.replace(/\.md$/, '.json'), 'utf8')) as { rows: unknown[] };
    expect(json.rows.length).toBeGreaterThanOrEqual(2);
    // As root, with overlayfs in the kernel: its costs on a loop-mounted ext4 image, in a file of their own.
    if (overlayUnavailable() === undefined) {
      const overlay = await fs.readFile(out.replace(/\.md$/, '-overlayfs.md'), 'utf8');
      expect(overlay).toMatch(/\| files \| prepare: hardlink ms \| prepare: overlayfs ms \|/);
      expect(overlay).toMatch(/\| files \| walk: plain ms \|/);
    }
  }, 300_000);
});
