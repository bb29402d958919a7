/**
 * A fresh machine: `npm test` first checks the system tools it needs, so a
 * machine without rsync fails in seconds naming rsync and the command that
 * installs it, instead of failing dozens of tests minutes later.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tmpdir } from './helpers.js';

/** A PATH with every command of this machine's PATH but `without`. */
async function pathWithout(without: string): Promise<string> {
  const dir = tmpdir('path');
  for (const p of (process.env.PATH ?? '').split(':')) {
    const names = await fs.readdir(p).catch(() => [] as string[]);
    for (const n of names) {
      if (n === without) continue;
      await fs.symlink(path.join(p, n), path.join(dir, n)).catch(() => undefined);
    }
  }
  return dir;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // A check that let the suite start would run it all again: stop that.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - t0 });
    });
  });
}

describe('system tools', () => {
  it('npm test on a machine without rsync fails within seconds, naming rsync and the install command', async () => {
    const PATH = await pathWithout('rsync');
    const r = await run('npm', ['test'], { ...process.env, PATH });
    expect(r.code).not.toBe(0);
    expect(r.ms).toBeLessThan(30_000);
    expect(r.out).toContain('reposnap: missing system tools: rsync');
    expect(r.out).toContain('scripts/install-system-deps');
  });

  it('the check passes here, where the tests run', async () => {
    const r = await run('bash', ['scripts/install-system-deps', '--check'], process.env);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });
});
