/**
 * The hash names Manifests use (GLEP 59 / GLEP 74: Python hashlib names in
 * upper case) and what node:crypto calls them. Which ones count:
 *
 * - An entry must carry at least one strong hash that reposnap can compute;
 *   every hash of the entry it can compute is checked. An entry whose hashes
 *   are all unknown, or only broken ones (MD5, SHA1, RMD160, where a
 *   collision could be bought), fails: a verifier that passes what it cannot
 *   check verifies nothing.
 * - WHIRLPOOL and STREEBOG are not in the OpenSSL node ships with; they are
 *   known names, so an entry with them and a strong computable hash passes
 *   on the latter, and one with only them fails with a clear reason.
 */
import { getHashes } from 'node:crypto';

const NODE_NAMES: Record<string, string> = {
  BLAKE2B: 'blake2b512',
  BLAKE2S: 'blake2s256',
  SHA256: 'sha256',
  SHA512: 'sha512',
  SHA3_256: 'sha3-256',
  SHA3_512: 'sha3-512',
  WHIRLPOOL: 'whirlpool',
  STREEBOG256: 'streebog256',
  STREEBOG512: 'streebog512',
  SHA1: 'sha1',
  MD5: 'md5',
  RMD160: 'ripemd160',
};
const WEAK = new Set(['MD5', 'SHA1', 'RMD160']);
const available = new Set(getHashes());

/** One hash to compute for an entry: its Manifest name, node's name, the expected digest. */
export interface HashCheck {
  name: string;
  algorithm: string;
  expected: string;
}

/** The hashes of `hashes` to check, or why the entry cannot be verified. */
export function hashChecks(hashes: Map<string, string>): HashCheck[] | string {
  const checks: HashCheck[] = [];
  let strong = false;
  for (const [name, expected] of hashes) {
    const algorithm = nodeAlgorithm(name);
    if (algorithm === undefined) continue;
    checks.push({ name, algorithm, expected });
    if (!WEAK.has(name)) strong = true;
  }
  if (strong) return checks;
  const names = [...hashes.keys()].join(', ');
  return checks.length > 0 ? `only broken hashes (${names}); a strong one such as BLAKE2B or SHA512 is needed` : `no hash reposnap can compute (${names})`;
}

/** node:crypto's name for a Manifest hash name, where it has one. */
export function nodeAlgorithm(name: string): string | undefined {
  const algorithm = NODE_NAMES[name];
  return algorithm !== undefined && available.has(algorithm) ? algorithm : undefined;
}

/** The hashes `reposnap` computes, for messages and docs. */
export function supportedHashNames(): string[] {
  return Object.entries(NODE_NAMES)
    .filter(([name, alg]) => available.has(alg) && !WEAK.has(name))
    .map(([name]) => name);
}
