/**
 * When a sync last ended well, and how: "updated" (it committed) or
 * "up-to-date" (upstream was unchanged). `list` and `status` show it, so
 * that a repo whose upstream has not moved for a week does not look as if
 * its timer stopped. One small JSON file, replaced atomically: in the store
 * (reposnap/last-check.json) or, for a plain location, in its cache folder.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { atomicWriteFile } from '../util/fs.js';

export interface LastCheck {
  at: string;
  outcome: 'updated' | 'up-to-date';
}

export async function writeLastCheck(dir: string, check: LastCheck): Promise<void> {
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await atomicWriteFile(path.join(dir, 'last-check.json'), `${JSON.stringify(check)}\n`);
}

export async function readLastCheck(dir: string): Promise<LastCheck | undefined> {
  try {
    const c = JSON.parse(await fs.readFile(path.join(dir, 'last-check.json'), 'utf8')) as LastCheck;
    return typeof c.at === 'string' ? c : undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined;
    throw err;
  }
}
