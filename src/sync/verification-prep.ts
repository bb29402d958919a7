/**
 * What the MetaManifest verification after the fill gets ready while the
 * fill still runs, so that none of it waits once the tree is there (on two
 * cores a fill leaves about a quarter of them idle):
 *
 *  - the key file, read once: the digest recorded with the snapshot (and
 *    compared with the base's to allow an incremental verification) and
 *    the keyring come from the very same bytes, whatever happens to the
 *    file meanwhile;
 *  - the keyring, made by gpg importing those bytes into a home of its own;
 *  - the base snapshot's folder index, read, parsed, and laid out by place
 *    for the walk;
 *  - the hashing threads and the walk's helper thread, started: a thread
 *    takes tens of milliseconds of CPU to start, which during the
 *    verification would be taken from the walk;
 *  - the changed sub-Manifests, read ahead as the fill writes them, and
 *    after it while the verification walks (trust/manifest-read-ahead.ts);
 *  - the top-level Manifest's signature, checked as the fill writes it
 *    (trust/signature-ahead.ts).
 *
 * None of it reads the tree being filled but the read-ahead and the
 * signature checked ahead, each only a hint taken for the very bytes the
 * verification reads. What fails here is kept and thrown where the verification asks
 * for it, so an error reads as it would without any of this. close() lets
 * everything go, used or not.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import type { MetaManifestConfig } from '../config/repos.js';
import type { Update } from '../store/storage.js';
import { HashPool } from '../trust/hash-pool.js';
import { ManifestReadAhead } from '../trust/manifest-read-ahead.js';
import { Keyring } from '../trust/openpgp.js';
import { SignatureAhead } from '../trust/signature-ahead.js';
import { parseFolderIndexInSlices, type FolderIndex } from '../trust/tree-walk.js';
import { WalkHelper } from '../trust/walk-helper.js';

/** The base snapshot an incremental verification starts from. */
export interface IncrementalBase {
  root: string;
  clonedAt: number;
  /** Its folder index, where it has one that reads. */
  folders?: FolderIndex;
}

export class VerificationPrep {
  private keyringOpened: Promise<Keyring> | undefined;
  readonly signatureAhead: SignatureAhead;

  private constructor(
    private readonly repo: string,
    private readonly config: MetaManifestConfig,
    private readonly key: Promise<{ bytes: Buffer; digest: string }>,
    /** Undefined for a full verification. */
    readonly base: Promise<IncrementalBase | undefined>,
    readonly readAhead: ManifestReadAhead | undefined,
    readonly pool: HashPool,
    readonly walkHelper: WalkHelper | undefined,
    target: string,
  ) {
    this.signatureAhead = new SignatureAhead(repo, target, () => this.keyring());
  }

  /** Tree-relative paths the fill has just written in place (a hint, see the top of this file). */
  offer(paths: string[]): void {
    this.readAhead?.offer(paths);
    this.signatureAhead.offer(paths);
  }

  /**
   * Start getting the verification of `update`'s tree ready. Incremental
   * where the tree was cloned from a snapshot verified with this very key
   * file and nobody else writes it (`untrustedWriter`: sync-user); else the
   * verification is a full one, and nothing is read ahead.
   */
  static async start(repo: string, config: MetaManifestConfig, update: Update, untrustedWriter: boolean): Promise<VerificationPrep> {
    const key = fs.readFile(config.key.file).then((bytes) => ({ bytes, digest: createHash('sha256').update(bytes).digest('hex') }));
    // A key file that cannot be read fails the verification, with its reason.
    key.catch(() => undefined);
    const digest = await key.then((k) => k.digest).catch(() => undefined);
    const base = update.baseTree;
    const incremental = digest !== undefined && !untrustedWriter && base?.clonedAt !== undefined && base.verified?.method === 'metamanifest' && base.verified.keyDigest === digest;
    // Without its folder index (a snapshot verified by an older reposnap, or
    // the index lost) the base still serves: the walk then lists every folder.
    const readBase = async (): Promise<IncrementalBase | undefined> => {
      if (!incremental || !base || base.clonedAt === undefined) return undefined;
      const text = await base.folderIndex?.().catch(() => undefined);
      // Parsed and laid out by place for the walk, while the fill runs: a
      // slice at a time, so that the fill's pipeline on this thread goes on.
      const folders = text === undefined ? undefined : await parseFolderIndexInSlices(text);
      return { root: base.dir, clonedAt: base.clonedAt, ...(folders ? { folders } : {}) };
    };
    // One piece at a time, so that those started are let go if a later one cannot be.
    const started: Array<{ close(): Promise<void> }> = [];
    let prep: VerificationPrep;
    try {
      const readAhead = incremental && base ? new ManifestReadAhead(update.target, base.dir) : undefined;
      if (readAhead) started.push({ close: () => readAhead.clear() });
      const pool = new HashPool(config.jobs);
      started.push(pool);
      const walkHelper = incremental ? new WalkHelper() : undefined;
      prep = new VerificationPrep(repo, config, key, readBase(), readAhead, pool, walkHelper, update.target);
    } catch (err) {
      await Promise.allSettled(started.map((s) => s.close()));
      throw err;
    }
    prep.base.catch(() => undefined);
    // The keyring too: a gpg process, which is not worth waiting for.
    prep.keyring().catch(() => undefined);
    return prep;
  }

  /** The SHA-256 of the key file's bytes; throws as reading it did. */
  async keyDigest(): Promise<string> {
    return (await this.key).digest;
  }

  /** A keyring of exactly the key file's keys, from the bytes digested; throws as making it did. */
  keyring(): Promise<Keyring> {
    this.keyringOpened ??= this.key.then((k) => Keyring.open(this.repo, this.config.key, k.bytes));
    return this.keyringOpened;
  }

  /** Let everything go, each piece whatever became of the others; the first failure is thrown after. */
  async close(): Promise<void> {
    // A gpg run ahead works in the keyring's home, which goes below.
    await this.signatureAhead.settle();
    const closing = await Promise.allSettled([
      this.readAhead?.clear(),
      this.pool.close(),
      this.walkHelper?.close(),
      this.keyringOpened?.then(
        (ring) => ring.close(),
        () => undefined,
      ),
    ]);
    const failed = closing.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
