/**
 * Reading rsync's itemized output back into a plan, and the --files-from
 * list made from it: every kind of line rsync prints, names that only
 * escapes can carry, and what the list leaves out. The real rsync's side of
 * it (that what it prints reads back to the same bytes, and that applying
 * the list makes the tree upstream's) is in rsync.test.ts.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeName, ITEM_FORMAT, parseLine, RsyncPlan, type Item } from '../src/sources/rsync-plan.js';
import { tmpdir } from './helpers.js';

const item = (kind: Item['kind'], type: string, p: string): Item => ({ kind, type, path: Buffer.from(p, 'latin1') });

describe('parseLine', () => {
  it('tells every kind of item apart', () => {
    expect(parseLine('>f+++++++++ 1234 cat/pkg/new.ebuild')).toEqual({ ...item('added', 'f', 'cat/pkg/new.ebuild'), size: 1234 });
    expect(parseLine('cd+++++++++ 4096 cat/new/')).toEqual(item('added', 'd', 'cat/new'));
    expect(parseLine('cL+++++++++ 7 link')).toEqual(item('added', 'L', 'link'));
    expect(parseLine('>f.st...... 99 cat/pkg/Manifest')).toEqual({ ...item('updated', 'f', 'cat/pkg/Manifest'), size: 99 });
    expect(parseLine('>f..t...... 0 same-size')).toEqual({ ...item('updated', 'f', 'same-size'), size: 0 });
    expect(parseLine('cLc.t...... 3 link')).toEqual(item('updated', 'L', 'link'));
    expect(parseLine('.f...p..... 10 mode-only')).toEqual({ ...item('attributes', 'f', 'mode-only'), size: 10 });
    expect(parseLine('.f....o.... 10 owner-only')).toEqual({ ...item('attributes', 'f', 'owner-only'), size: 10 });
    expect(parseLine('.L..t...... 3 link')).toEqual(item('attributes', 'L', 'link'));
    expect(parseLine('.d...p..... 4096 dir/')).toEqual(item('attributes', 'd', 'dir'));
    expect(parseLine('.d..t...... 4096 dir/')).toEqual(item('dir-time', 'd', 'dir'));
    expect(parseLine('.d..t...... 4096 ./')).toEqual(item('dir-time', 'd', '.'));
    expect(parseLine('*deleting   0 cat/old/')).toEqual(item('deleted', 'd', 'cat/old'));
    expect(parseLine('*deleting   0 cat/pkg/old.ebuild')).toEqual(item('deleted', '', 'cat/pkg/old.ebuild'));
    expect(parseLine('skipping non-regular file "fifo"')).toEqual({ kind: 'special', path: 'fifo' });
  });

  it('takes the name as everything after the length, whatever it holds', () => {
    // Names that start with digits, hold spaces, or look like an item themselves.
    expect(parseLine('>f+++++++++ 5 12 34 name')).toEqual({ ...item('added', 'f', '12 34 name'), size: 5 });
    expect(parseLine('>f+++++++++ 5  leading space')).toEqual({ ...item('added', 'f', ' leading space'), size: 5 });
    expect(parseLine('>f+++++++++ 5 trailing space ')).toEqual({ ...item('added', 'f', 'trailing space '), size: 5 });
    expect(parseLine('>f+++++++++ 5 >f+++++++++ 5 x')).toEqual({ ...item('added', 'f', '>f+++++++++ 5 x'), size: 5 });
    expect(parseLine('*deleting   0 *deleting   0 x')).toEqual(item('deleted', '', '*deleting   0 x'));
    expect(parseLine('*deleting   0 9 9')).toEqual(item('deleted', '', '9 9'));
    // A line of the old format (no length) with a one-word name is no item.
    expect(parseLine('>f+++++++++ cat/pkg/new.ebuild')).toBeUndefined();
  });

  it('ignores what is not an item', () => {
    for (const line of ['', 'Number of files: 12 (reg: 9, dir: 3)', 'sending incremental file list', 'Total file size: 1,234 bytes', 'rsync: some complaint']) {
      expect(parseLine(line)).toBeUndefined();
    }
  });

  it('decodes escapes back to the name bytes', () => {
    expect(decodeName('a/we ird\\#012name')).toEqual(Buffer.from('a/we ird\nname'));
    expect(decodeName('back\\#134#134slash')).toEqual(Buffer.from('back\\#134slash'));
    expect(decodeName('caf\\#351')).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    expect(decodeName('dir/')).toEqual(Buffer.from('dir'));
    expect(decodeName('./')).toEqual(Buffer.from('.'));
  });

  it("reads the real rsync's output back to the exact names", async () => {
    const dir = tmpdir();
    const src = path.join(dir, 'src');
    await fs.mkdir(src);
    const names = [Buffer.from('plain'), Buffer.from('new\nline'), Buffer.from('back\\#134slash'), Buffer.from([0x63, 0x61, 0x66, 0xe9]), Buffer.from('tab\there'), Buffer.from('ünïcode')];
    // Each file holds its own name: its length is the name's.
    for (const n of names) await fs.writeFile(Buffer.concat([Buffer.from(`${src}/`), n]), n);
    const out = execFileSync('rsync', ['-a', '--no-8-bit-output', '--no-human-readable', ITEM_FORMAT, '--dry-run', `${src}/`, path.join(dir, 'dst')], { env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8' });
    const seen = out
      .split('\n')
      .map(parseLine)
      .filter((i): i is Item => i !== undefined && i.kind === 'added' && i.type === 'f')
      .map((i) => `${i.path.toString('hex')} ${i.size}`)
      .sort();
    expect(seen).toEqual(names.map((n) => `${n.toString('hex')} ${n.length}`).sort());
  });
});

describe('RsyncPlan', () => {
  it('lists every item but the top, and of nested deletions only the highest', () => {
    const plan = new RsyncPlan('/base', []);
    for (const i of [
      item('deleted', '', 'gone/x/y'),
      item('deleted', '', 'gone/x'),
      item('deleted', '', 'gone'),
      item('deleted', '', 'dir2file/in'),
      item('added', 'f', 'dir2file'),
      item('deleted', '', 'dir2link/in'),
      item('updated', 'L', 'dir2link'),
      item('dir-time', 'd', '.'),
      item('attributes', 'f', 'a/mode'),
      item('updated', 'f', 'a/b/new\ncontent'),
      item('deleted', '', 'a/old'),
      // A folder that stays a folder: what it loses is listed (rsync does not look inside it).
      item('deleted', '', 'cat/pkg/Manifest'),
      item('dir-time', 'd', 'cat/pkg'),
    ]) {
      plan.add(i);
    }
    expect(plan.filesFrom().toString('latin1').split('\0')).toEqual(['gone', 'dir2file', 'dir2link', 'a/mode', 'a/b/new\ncontent', 'a/old', 'cat/pkg/Manifest', 'cat/pkg', '']);
    // The top's time alone: the commit sets it anyway.
    expect(plan.topChanged).toBe(false);
    expect(plan.changed).toBe(true);
    expect(plan.changes()).toEqual({ added: 1, updated: 3, deleted: 7, bytesTransferred: 0 });
    expect(plan.existingPaths().map((p) => p.toString())).toEqual(['dir2link', '.', 'a/mode', 'a/b/new\ncontent', 'cat/pkg']);
  });

  it('knows the bytes its apply writes: every file it lists but deletions, attribute changes too', () => {
    const plan = new RsyncPlan('/base', []);
    plan.add({ ...item('added', 'f', 'new'), size: 100 });
    plan.add({ ...item('updated', 'f', 'changed'), size: 20 });
    // --ignore-times: the apply writes a file whose mode alone differs anew.
    plan.add({ ...item('attributes', 'f', 'mode'), size: 3 });
    plan.add(item('added', 'L', 'link'));
    plan.add(item('added', 'd', 'dir'));
    plan.add(item('deleted', '', 'gone'));
    expect(plan.bytesToWrite()).toBe(123);
    expect(new RsyncPlan('/base', []).bytesToWrite()).toBe(0);
  });

  it('counts directory times alone as no change', () => {
    const plan = new RsyncPlan('/base', []);
    plan.add(item('dir-time', 'd', '.'));
    plan.add(item('dir-time', 'd', 'cat'));
    expect(plan.changed).toBe(false);
  });

  it("sets the top's own attributes apart only when its mode or owner differ, not for its time", () => {
    const plan = new RsyncPlan('/base', []);
    plan.add(item('dir-time', 'd', '.'));
    plan.add(item('updated', 'f', 'a'));
    expect(plan.topChanged).toBe(false);
    plan.add(item('attributes', 'd', '.'));
    expect(plan.topChanged).toBe(true);
  });

  it('tells when the apply did otherwise than the plan said', () => {
    const plan = new RsyncPlan('/base', []);
    plan.add(item('updated', 'f', 'a'));
    plan.add(item('attributes', 'f', 'b'));
    plan.add(item('added', 'L', 'c'));
    plan.add(item('dir-time', 'd', 'dir'));
    // --ignore-times turns an attribute change of a file into a transfer; directories do not count.
    expect(plan.drift([item('updated', 'f', 'a'), item('updated', 'f', 'b'), item('added', 'L', 'c'), item('attributes', 'd', 'dir')])).toBe(0);
    // Upstream changed in between: one more file, one planned change gone.
    expect(plan.drift([item('updated', 'f', 'a'), item('updated', 'f', 'b'), item('added', 'f', 'late')])).toBe(2);
  });

  it('applied in parts: deletions wait for the last part, which also lists every folder again', () => {
    const plan = RsyncPlan.growing('/base', []);
    const listed = new Set<string>();
    const list = (b: Buffer): string[] => b.toString('latin1').split('\0').slice(0, -1);
    const first = [
      item('deleted', '', 'dir2file/in'),
      item('dir-time', 'd', '.'),
      item('added', 'd', 'new'),
      item('attributes', 'L', 'link'),
      item('deleted', '', 'file2dir'),
    ];
    for (const i of first) plan.add(i);
    const part = RsyncPlan.partApply(plan.items.slice(0), listed);
    expect(list(part.list)).toEqual(['new', 'link']);
    expect(part.count).toBe(2);
    expect(part.unshare.map(String)).toEqual(['.', 'link']);
    for (const i of [
      item('added', 'f', 'new/f'),
      item('added', 'f', 'dir2file'),
      item('added', 'd', 'file2dir'),
      item('deleted', '', 'gone/x'),
      item('deleted', 'd', 'gone'),
      item('deleted', '', 'old'),
      item('added', 'f', 'late'),
    ]) {
      plan.add(i);
    }
    plan.finish({ status: { code: 0, signal: null }, stderr: '' });
    const last = plan.lastApply(first.length, listed);
    // The rest; of the deletions only those not taken care of otherwise (not dir2file/in: its folder
    // becomes a file; not gone/x: it goes with gone); the folder listed before, again; each path once.
    expect(list(last.list)).toEqual(['new', 'file2dir', 'new/f', 'dir2file', 'gone', 'old', 'late']);
    expect(last.unshare).toEqual([]);
    // A deletion whose path an earlier part listed: replaced there, not deleted again.
    expect(list(plan.lastApply(first.length, new Set([...listed, 'old'])).list)).not.toContain('old');
    // All at once, as a plan complete from the start is applied.
    expect(list(plan.lastApply(0, new Set()).list)).toEqual(list(plan.filesFrom()));
    expect(list(plan.filesFrom())).toEqual(['new', 'link', 'file2dir', 'new/f', 'dir2file', 'gone', 'old', 'late']);
  });

  it('grows: says when it holds enough, or a change, or has ended; stop() stops its dry run and waits for the end', async () => {
    const plan = RsyncPlan.growing('/base', []);
    expect(plan.complete).toBe(false);
    let grown = false;
    let changed = false;
    void plan.whenGrown(2).then(() => (grown = true));
    void plan.whenChanged().then(() => (changed = true));
    plan.add(item('dir-time', 'd', 'a'));
    await Promise.resolve();
    expect([grown, changed]).toEqual([false, false]);
    plan.add(item('updated', 'f', 'a/f'));
    await new Promise((r) => setTimeout(r, 0));
    expect([grown, changed]).toEqual([true, true]);
    let stopped = 0;
    plan.stopWith(() => {
      stopped++;
      plan.finish({ status: { code: null, signal: 'SIGTERM' }, stderr: '' });
    });
    const waiting = plan.whenGrown(100);
    await plan.stop();
    await waiting;
    expect(stopped).toBe(1);
    expect(plan.complete).toBe(true);
    expect((await plan.ended()).status.signal).toBe('SIGTERM');
    // Complete: stopping again does nothing.
    await plan.stop();
    expect(stopped).toBe(1);
    // A dry run that could not start: ended() says why.
    const failed = RsyncPlan.growing('/base', []);
    failed.abandon(new Error('rsync is not installed'));
    await failed.whenChanged();
    await expect(failed.ended()).rejects.toThrow('not installed');
    await failed.stop();
  });
});
