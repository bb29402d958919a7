/**
 * The command line as people already use others: global options after the
 * command too, bare `reposnap` a usage error with the help on stderr, and a
 * sync that has to wait for another saying so at once.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { rcuConf, runCli, sleep, startCli, tmpdir, writeConf, writeTree } from './helpers.js';

async function synced(): Promise<{ dir: string; conf: string }> {
  const dir = tmpdir();
  await writeTree(path.join(dir, 'upstream'), { 'metadata/timestamp.chk': 'T1\n' });
  const conf = await writeConf(dir, rcuConf(dir));
  expect((await runCli(['-c', conf, 'sync'])).code).toBe(0);
  return { dir, conf };
}

describe('the command line', () => {
  it('takes the global options after the command too, and lists them in its help', async () => {
    const { conf } = await synced();
    const before = await runCli(['-c', conf, 'status', 'test', '--json']);
    const after = await runCli(['status', 'test', '-c', conf, '--json']);
    expect(after.code).toBe(0);
    expect(after.stdout).toBe(before.stdout);
    const quiet = await runCli(['sync', '-q', '--config', conf]);
    expect(quiet).toMatchObject({ code: 0, stdout: '', stderr: '' });
    for (const cmd of [['sync'], ['status'], ['stamp', 'show']]) {
      const help = (await runCli([...cmd, '--help'])).stdout;
      expect(help, cmd.join(' ')).toMatch(/-c, --config <path>/);
      expect(help, cmd.join(' ')).toMatch(/-q, --quiet/);
    }
  });

  it('bare reposnap prints the help on stderr and exits 2 (usage)', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Usage: reposnap/);
  });

  it('a sync that waits for another says so at once, naming the holder', async () => {
    const { dir, conf } = await synced();
    await fs.writeFile(path.join(dir, 'upstream', 'metadata', 'timestamp.chk'), 'T2\n');
    // The first sync stops holding the repo (a failpoint), the second waits for it.
    const holder = startCli(['-c', conf, 'sync'], { env: { ...process.env, REPOSNAP_FAILPOINT: 'staged' } });
    let said = '';
    holder.child.stderr?.on('data', (d: Buffer) => (said += d.toString()));
    for (let i = 0; i < 200 && !said.includes('failpoint staged'); i++) await sleep(25);
    expect(said).toContain('failpoint staged');
    const waiter = startCli(['-c', conf, 'sync']);
    let waited = '';
    waiter.child.stderr?.on('data', (d: Buffer) => (waited += d.toString()));
    for (let i = 0; i < 200 && !waited.includes('waiting'); i++) await sleep(25);
    expect(waited).toMatch(new RegExp(`^reposnap: waiting for the update of test by pid ${holder.child.pid} \\(sync, since \\d{4}-`));
    holder.child.kill('SIGTERM');
    await holder.done;
    const r = await waiter.done;
    expect(r.code).toBe(0);
    expect(await fs.readFile(path.join(dir, 'repo', 'metadata', 'timestamp.chk'), 'utf8')).toBe('T2\n');
  });
});
