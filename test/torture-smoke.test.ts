/**
 * The torture suite's quick version (npm run torture runs the same; --long
 * the full one). It fails here when any guarantee failed: a torn read, a
 * location that is not a whole committed tree after kill -9, an exit other
 * than 0 or 75, a bad configuration that exits otherwise than 2 or touches
 * something, a hostile source written outside the store, a writable snapshot.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tmpdir } from './helpers.js';

interface Report {
  cases: Array<{ id: string; title: string; rows: Array<{ what: string; tried: number; outcome: string; bad: number; baseline?: boolean }>; skipped: string[] }>;
}

describe('torture suite (quick version)', () => {
  it('tries every case and loses nothing', async () => {
    const out = path.join(tmpdir(), 'reliability.md');
    // Asynchronously: a worker blocked for minutes in spawnSync misses vitest's own messages.
    const status = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(process.execPath, ['dist-torture/run.js', '--out', out], { cwd: ROOT, stdio: 'ignore' });
      child.on('error', reject);
      child.on('close', resolve);
    });
    const report = JSON.parse(await fs.readFile(out.replace(/\.md$/, '.json'), 'utf8')) as Report;
    for (const c of report.cases) for (const s of c.skipped) console.log(`torture: ${c.title}: skipped ${s}`);
    const failures = report.cases.flatMap((c) => c.rows.filter((row) => !row.baseline && row.bad > 0).map((row) => `${c.title}: ${row.what}: ${row.outcome}`));
    expect(failures).toEqual([]);
    expect(status).toBe(0);
    expect(report.cases.map((c) => c.id)).toEqual(['torn-reads', 'crashes', 'concurrency', 'faults', 'bad-config', 'hostile-sources', 'permissions', 'hostile-races']);
    // The in-place baseline is there to show what RCU prevents: it must tear.
    const torn = report.cases.find((c) => c.id === 'torn-reads');
    expect(torn?.rows.find((row) => row.baseline && row.what.startsWith('in-place'))?.bad).toBeGreaterThan(0);
  }, 900_000);
});
