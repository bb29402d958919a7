/**
 * The authenticity step of a sync, between fill and commit: MetaManifest
 * verification of the staging tree (incremental where the base snapshot was
 * verified with the same key file), then rollback protection: a tree older
 * than the current one is refused unless the user asks for it. Either
 * refusal leaves the previous snapshot current.
 */
import type { MetaManifestConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import type { VerificationRecord } from '../store/metadata.js';
import type { Update } from '../store/storage.js';
import { formatTimestamp, parseTimestamp } from '../trust/manifest-format.js';
import { ManifestFailure, verifyMetaManifest, type MetaManifestResult } from '../trust/metamanifest.js';
import { serializeFolderIndex } from '../trust/tree-walk.js';
import { manifestAge, timestampChkAge, type TreeAge } from '../trust/tree-age.js';
import { VerificationPrep } from './verification-prep.js';

export interface AuthenticityCheck {
  repo: string;
  metamanifest: MetaManifestConfig | undefined;
  update: Update;
  /** The tree readers have now (what the new one must not be older than). */
  current: string | undefined;
  allowOlder: boolean;
  /** Another user wrote the tree (sync-user): verify it in full. */
  untrustedWriter: boolean;
  /** The verification got ready during the fill (prepareVerification); else it is got ready now. */
  prep?: VerificationPrep;
}

export interface Verified {
  record: VerificationRecord;
  result: MetaManifestResult;
  /** The tree's folder index, to keep with the snapshot for the next incremental verification. */
  folderIndex?: string;
}

const NOTHING_PUBLISHED = 'nothing was published, the previous snapshot stays current';

/**
 * Where the tree is to be verified, the verification's preparations,
 * started now to run while the fill does (see verification-prep.ts): the
 * caller offers the read-ahead the paths the fill writes, stops it when the
 * fill ends, and closes it all once the verification is over.
 */
export async function prepareVerification(c: Pick<AuthenticityCheck, 'repo' | 'metamanifest' | 'update' | 'untrustedWriter'>): Promise<VerificationPrep | undefined> {
  return c.metamanifest ? VerificationPrep.start(c.repo, c.metamanifest, c.update, c.untrustedWriter) : undefined;
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
  const prep = c.prep ?? (await VerificationPrep.start(c.repo, config, c.update, c.untrustedWriter));
  let folderIndex: string | undefined;
  try {
    const keyDigest = await prep.keyDigest();
    const base = await prep.base;
    const keyring = await prep.keyring();
    const result = await verifyMetaManifest({
      repo: c.repo,
      root: c.update.target,
      keyring,
      jobs: config.jobs,
      maxAgeDays: config.maxAgeDays,
      ignoreTop: c.update.excludeTop,
      ...(base ? { base, ...(prep.readAhead ? { readAhead: prep.readAhead } : {}) } : {}),
      signatureAhead: prep.signatureAhead,
      threads: { pool: prep.pool, ...(prep.walkHelper ? { walkHelper: prep.walkHelper } : {}) },
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
    if (prep !== c.prep) await prep.close();
  }
}

function show(t: Date): string {
  return formatTimestamp(t);
}
