/**
 * Which repository a store belongs to: reposnap/owner.json, written by the
 * first update of a store (or of one made by Portage, which has none) and
 * checked by every later update, migration, revert and collection. Two
 * configuration files that name one store for different repositories or
 * locations would otherwise each repoint the other's location.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { errnoCode } from '../errors.js';
import { atomicWriteFile } from '../util/fs.js';
import type { StoreLayout } from './layout.js';

export interface StoreOwner {
  repo: string;
  location: string;
}

function ownerFile(layout: StoreLayout): string {
  return path.join(layout.ownDir, 'owner.json');
}

export async function readOwner(layout: StoreLayout): Promise<StoreOwner | undefined> {
  let text: string;
  try {
    text = await fs.readFile(ownerFile(layout), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const o = JSON.parse(text) as Partial<StoreOwner>;
    if (typeof o.repo === 'string' && typeof o.location === 'string') return { repo: o.repo, location: o.location };
  } catch {
    // A torn or hand-edited file: claimed again below.
  }
  return undefined;
}

export async function writeOwner(layout: StoreLayout, owner: StoreOwner): Promise<void> {
  await fs.mkdir(layout.ownDir, { recursive: true, mode: 0o755 });
  await atomicWriteFile(ownerFile(layout), `${JSON.stringify(owner)}\n`);
}
