/**
 * The authenticity step of a sync, between fill and commit: MetaManifest
 * verification of the staging tree (incremental where the base snapshot was
 * verified with the same key file), then rollback protection: a tree older
 * than the current one is refused unless the user asks for it. Either
 * refusal leaves the previous snapshot current.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import type { MetaManifestConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import type { VerificationRecord } from '../store/metadata.js';
import type { Update } from '../store/storage.js';
import { formatTimestamp, parseTimestamp } from '../trust/manifest-format.js';
import { ManifestReadAhead } from '../trust/manifest-read-ahead.js';
import { ManifestFailure, verifyMetaManifest, type MetaManifestResult } from '../trust/metamanifest.js';
import { Keyring } from '../trust/openpgp.js';
import { parseFolderIndex, serializeFolderIndex, type FolderIndex } from '../trust/tree-walk.js';
import { manifestAge, timestampChkAge, type TreeAge } from '../trust/tree-age.js';

export interface AuthenticityCheck {
  repo: string;
  metamanifest: MetaManifestConfig | undefined;
  update: Update;
  /** The tree readers have now (what the new one must not be older than). */
  current: string | undefined;
  allowOlder: boolean;
  /** Another user wrote the tree (sync-user): verify it in full. */
  untrustedWriter: boolean;
  /** Changed sub-Manifests read ahead during the fill (see manifestReadAhead). */
  readAhead?: ManifestReadAhead;
}

export interface Verified {
  record: VerificationRecord;
  result: MetaManifestResult;
  /** The tree's folder index, to keep with the snapshot for the next incremental verification. */
  folderIndex?: string;
}

const NOTHING_PUBLISHED = 'nothing was published, the previous snapshot stays current';

type Base = NonNullable<Update['baseTree']>;

/**
 * Where the verification after the fill will be incremental, something
 * to read the changed sub-Manifests ahead with while the fill runs (offer
 * it the paths the fill writes, stop it when the fill ends); undefined
 * where there is nothing to compare with. The verification uses what it
 * read only for the very bytes it reads itself (trust/manifest-read-ahead.ts).
 */
export async function manifestReadAhead(c: Pick<AuthenticityCheck, 'metamanifest' | 'update' | 'untrustedWriter'>): Promise<ManifestReadAhead | undefined> {
  if (!c.metamanifest) return undefined;
  // A key file that cannot be read fails the verification later, with its reason.
  const keyDigest = await digestOf(c.metamanifest).catch(() => undefined);
  const base = keyDigest === undefined ? undefined : incrementalBase(c, keyDigest);
  return base ? new ManifestReadAhead(c.update.target, base.dir) : undefined;
}

/**
 * The snapshot an incremental verification starts from: the base the
 * staging tree was cloned from, if it was verified with this very key file
 * and nobody else wrote the tree; else none (a full verification).
 */
function incrementalBase(c: Pick<AuthenticityCheck, 'update' | 'untrustedWriter'>, keyDigest: string): (Base & { clonedAt: number }) | undefined {
  const base = c.update.baseTree;
  if (c.untrustedWriter || base?.clonedAt === undefined || base.verified?.method !== 'metamanifest' || base.verified.keyDigest !== keyDigest) return undefined;
  return base as Base & { clonedAt: number };
}

async function digestOf(config: MetaManifestConfig): Promise<string> {
  return createHash('sha256')
    .update(await fs.readFile(config.key.file))
    .digest('hex');
}

export async function checkAuthenticity(c: AuthenticityCheck): Promise<Verified | undefined> {
  let verified: Verified | undefined;
  let fresh: TreeAge | undefined;
  let current: TreeAge | undefined;
  if (c.metamanifest) {
    verified = await verifyTree(c, c.metamanifest);
    fresh = { time: parseTimestamp(verified.result.timestamp) as Date, from: 'Manifest TIMESTAMP' };
    // The current snapshot's TIMESTAMP as its verification recorded it; read
    // from its Manifest only where none was recorded (a tree made before
    // verification was turned on, or a plain location).
    const recorded = c.update.baseTree?.verified?.timestamp;
    const recordedTime = recorded === undefined ? undefined : parseTimestamp(recorded);
    current = recordedTime ? { time: recordedTime, from: 'Manifest TIMESTAMP' } : c.current === undefined ? undefined : await manifestAge(c.current);
  } else {
    fresh = await timestampChkAge(c.update.target);
    current = c.current === undefined ? undefined : await timestampChkAge(c.current);
  }
  if (fresh && current && fresh.from === current.from && fresh.time < current.time && !c.allowOlder) {
    throw new ReposnapError(
      'EUNSAFE',
      `repo ${c.repo}: refusing a tree older than the current one: its ${fresh.from} is ${show(fresh.time)}, the current snapshot's is ${show(current.time)} (a stale or replayed mirror); ${NOTHING_PUBLISHED} (sync --allow-older accepts it)`,
    );
  }
  return verified;
}

async function verifyTree(c: AuthenticityCheck, config: MetaManifestConfig): Promise<Verified> {
  const keyDigest = await digestOf(config);
  const base = incrementalBase(c, keyDigest);
  // Without its folder index (a snapshot verified by an older reposnap, or
  // the index lost) the base still serves: the walk then lists every folder.
  const folders = base ? parseIndex(await base.folderIndex?.().catch(() => undefined)) : undefined;
  const incremental = base ? { root: base.dir, clonedAt: base.clonedAt, ...(folders ? { folders } : {}) } : undefined;
  let folderIndex: string | undefined;
  const keyring = await Keyring.open(c.repo, config.key);
  try {
    const result = await verifyMetaManifest({
      repo: c.repo,
      root: c.update.target,
      keyring,
      jobs: config.jobs,
      maxAgeDays: config.maxAgeDays,
      ignoreTop: c.update.excludeTop,
      ...(incremental ? { base: incremental, ...(c.readAhead ? { readAhead: c.readAhead } : {}) } : {}),
      onFolders: (index) => (folderIndex = serializeFolderIndex(index)),
    });
    return {
      result,
      ...(folderIndex !== undefined ? { folderIndex } : {}),
      record: {
        method: 'metamanifest',
        signedBy: result.signedBy,
        keyFile: config.key.file,
        keyDigest,
        timestamp: result.timestamp,
        incremental: result.incremental,
        at: new Date().toISOString(),
        files: result.files,
        hashed: result.hashed,
      },
    };
  } catch (err) {
    if (err instanceof ManifestFailure) {
      throw new ReposnapError('EUNSAFE', `repo ${c.repo}: MetaManifest verification failed: ${err.file}: ${err.what}; ${NOTHING_PUBLISHED}`, { cause: err });
    }
    throw err;
  } finally {
    await keyring.close();
  }
}

function parseIndex(text: string | undefined): FolderIndex | undefined {
  return text === undefined ? undefined : parseFolderIndex(text);
}

function show(t: Date): string {
  return formatTimestamp(t);
}
