/**
 * The top-level Manifest's signature, checked while the fill still runs.
 *
 * An rsync fill writes the top-level Manifest in its first part (it sorts
 * first), seconds before the tree is finished. Checked then, gpg's answer
 * is there when the verification asks for it, instead of a gpg process
 * started, and waited for, while the verification walks the tree on both
 * cores.
 *
 * Nothing is trusted beyond the bytes checked: the answer is about the
 * bytes read when the fill announced the file, and the verification takes
 * it only for the very bytes it reads itself once the fill is over
 * (compared whole); for any others it asks gpg as it would have. So a
 * Manifest the fill wrote again later, or one it never announced, costs a
 * gpg run, never a wrong answer. Where the check ahead failed to run (not
 * where it refused the signature), the verification runs its own.
 */
import path from 'node:path';
import { readRegularFile } from '../util/fs.js';
import { MAX_MANIFEST_BYTES } from './manifest-bytes.js';
import type { CleartextVerdict, Keyring } from './openpgp.js';

export class SignatureAhead {
  private latest: { bytes: Buffer; verdict: Promise<CleartextVerdict> } | undefined;

  /**
   * @param root the tree being filled
   * @param keyring the keyring the verification will check against (made while the fill runs)
   */
  constructor(
    private readonly repo: string,
    private readonly root: string,
    private readonly keyring: () => Promise<Keyring>,
  ) {}

  /** Tree-relative paths the fill has just written (a hint): the top-level Manifest among them is checked as it is now. */
  offer(paths: Iterable<string>): void {
    for (const p of paths) {
      if (p !== 'Manifest') continue;
      this.check();
      return;
    }
  }

  /**
   * gpg's answer for `bytes` (the top-level Manifest as the verification
   * read it), where they were checked ahead, exactly these bytes; else
   * undefined. It rejects where the check could not run.
   */
  take(bytes: Buffer): Promise<CleartextVerdict> | undefined {
    const latest = this.latest;
    if (!latest?.bytes.equals(bytes)) return undefined;
    return latest.verdict;
  }

  /** Settle what is in flight (a gpg run in the keyring's home, which is about to go). */
  async settle(): Promise<void> {
    await this.latest?.verdict.catch(() => undefined);
  }

  private check(): void {
    let bytes: Buffer;
    try {
      bytes = readRegularFile(path.join(this.root, 'Manifest'), (st) => {
        if (st.size > MAX_MANIFEST_BYTES) throw new Error('larger than any Manifest should be');
      });
    } catch {
      // The verification reads it again, and says what is wrong with it.
      this.latest = undefined;
      return;
    }
    const verdict = this.keyring().then((ring) => ring.verifyCleartextBytes(this.repo, bytes));
    verdict.catch(() => undefined);
    this.latest = { bytes, verdict };
  }
}
