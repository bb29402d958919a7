/**
 * OpenPGP signatures checked against the keys of one key file
 * (sync-openpgp-key-path), with GnuPG as users trust it, in a keyring of its
 * own: a temporary GnuPG home into which only that file is imported, so the
 * user's own keys and trust settings never count, and a good signature means
 * "made by a key from that file". Keys are never refreshed from the network.
 */
import { accessSync, constants as fsc, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ReposnapError, type ConfigPosition } from '../errors.js';
import { runProcess } from '../util/process.js';
import { cleartextBody, normaliseSigned } from './manifest-format.js';

export interface KeySource {
  file: string;
  /** Where sync-openpgp-key-path is set, for errors about the key file. */
  position: ConfigPosition;
}

/**
 * sync-openpgp-key-path, which verification asked for by `askedBy` needs:
 * missing or unreadable is a configuration error, never a silent downgrade.
 */
/** What keyFileFor reads of a repository's configuration (config's reader has it). */
export interface KeyFileReader {
  path(key: string): string | undefined;
  at(key: string): ConfigPosition;
}

export function keyFileFor(r: KeyFileReader, askedBy: string): KeySource {
  const file = r.path('sync-openpgp-key-path');
  if (file === undefined) throw new ConfigError(r.at(askedBy), 'needs sync-openpgp-key-path (the key file signatures are checked against)');
  try {
    accessSync(file, fsc.R_OK);
    if (!statSync(file).isFile()) throw Object.assign(new Error('not a file'), { code: 'not a regular file' });
  } catch (err) {
    throw new ConfigError(r.at('sync-openpgp-key-path'), `cannot read the key file ${file} (${(err as { code?: string }).code ?? String(err)})`);
  }
  return { file, position: r.at('sync-openpgp-key-path') };
}

export type Verdict = { ok: true; fingerprint: string } | { ok: false; why: string };

/** What a cleartext signature check says, with the signed text where it holds. */
export type CleartextVerdict = Verdict & { text?: string };

export class Keyring {
  /** Cleartext checks so far: each names its files in the home by its number. */
  private calls = 0;

  private constructor(private readonly home: string) {}

  /**
   * A keyring holding exactly the keys of `key.file` (or of `bytes`, read
   * from it by the caller, so that what it digested is what is imported); a
   * file with no usable key is a configuration error.
   */
  static async open(repo: string, key: KeySource, bytes?: Buffer): Promise<Keyring> {
    const home = await fs.mkdtemp(path.join(os.tmpdir(), 'reposnap-gpg-'));
    const ring = new Keyring(home);
    try {
      let from = key.file;
      if (bytes) {
        from = path.join(home, 'keys');
        await fs.writeFile(from, bytes);
      }
      const end = await ring.gpg(repo, ['--import', from]);
      const imported = end.stdout
        .toString()
        .split('\n')
        .filter((l) => /^\[GNUPG:\] IMPORT_OK /.test(l)).length;
      if (imported === 0) throw new ConfigError(key.position, `${key.file} holds no OpenPGP key that can be used (gpg: ${gpgSays(end.stderr, home, { [from]: key.file }) || 'nothing imported'})`);
      return ring;
    } catch (err) {
      await ring.close();
      throw err;
    }
  }

  /** Check a detached signature over `data`. */
  async verify(repo: string, signature: Buffer, data: Buffer): Promise<Verdict> {
    const payload = path.join(this.home, 'payload');
    await fs.writeFile(payload, data);
    return this.verifyFile(repo, signature, payload);
  }

  /**
   * Check a detached signature over the content of `file`, which gpg reads
   * where it is: a snapshot tarball of gigabytes is neither copied nor held
   * in memory.
   */
  async verifyFile(repo: string, signature: Buffer, file: string): Promise<Verdict> {
    const sig = path.join(this.home, 'signature');
    await fs.writeFile(sig, signature);
    const end = await this.gpg(repo, ['--verify', sig, file]);
    return readVerdict(end.stdout.toString(), end.code, gpgSays(end.stderr, this.home));
  }

  /**
   * Check an OpenPGP cleartext-signed file (a MetaManifest) and return the
   * text the signature covers, as gpg read it (see verifyCleartextBytes).
   */
  async verifyCleartext(repo: string, file: string): Promise<CleartextVerdict> {
    return this.verifyCleartextBytes(repo, await fs.readFile(file));
  }

  /**
   * Check `bytes`, an OpenPGP cleartext-signed message, and return the text
   * the signature covers, as gpg read it: what is parsed afterwards is
   * exactly what was signed, never text around or between signed blocks.
   * Bytes that are not one cleartext-signed message are refused before gpg
   * reads them. gpg reads a copy in the keyring's home, so the verdict is
   * about these very bytes, whatever happens to the file they came from.
   */
  async verifyCleartextBytes(repo: string, bytes: Buffer): Promise<CleartextVerdict> {
    const raw = bytes.toString('latin1');
    const count = (marker: string): number => raw.split(marker).length - 1;
    if (!raw.startsWith('-----BEGIN PGP SIGNED MESSAGE-----')) return { ok: false, why: 'it is not OpenPGP-signed' };
    if (count('-----BEGIN PGP SIGNED MESSAGE-----') !== 1 || count('-----BEGIN PGP SIGNATURE-----') !== 1 || count('-----END PGP SIGNATURE-----') !== 1 || !/-----END PGP SIGNATURE-----\s*$/.test(raw)) {
      return { ok: false, why: 'it is not exactly one cleartext-signed message (text outside the signature, or several signatures)' };
    }
    // Names of this call's own: checks may run side by side (one ahead of
    // the fill's end, one after it).
    const n = this.calls++;
    const signed = path.join(this.home, `signed-${n}`);
    const plain = path.join(this.home, `plain-${n}`);
    await fs.writeFile(signed, bytes);
    const end = await this.gpg(repo, ['--output', plain, '--decrypt', signed]);
    const verdict = readVerdict(end.stdout.toString(), end.code, gpgSays(end.stderr, this.home));
    if (!verdict.ok) return verdict;
    const text = await fs.readFile(plain, 'utf8');
    // gpg passes over text it does not check (lines between the signature's
    // checksum and its end, say): the file must say nothing but what is
    // signed, since later readers of the file (an incremental verification
    // reading this snapshot as its base) see the whole of it.
    if (normaliseSigned(cleartextBody(bytes.toString('utf8'))) !== normaliseSigned(text)) {
      return { ok: false, why: 'the file holds text its signature does not cover' };
    }
    return { ...verdict, text };
  }

  async close(): Promise<void> {
    // Retried: a gpg that has just ended may leave a socket or lock going away.
    await fs.rm(this.home, { recursive: true, force: true, maxRetries: 3 });
  }

  private gpg(repo: string, args: string[]) {
    return runProcess('gpg', ['--homedir', this.home, '--batch', '--no-tty', '--no-autostart', '--status-fd', '1', ...args], {
      env: { GNUPGHOME: this.home, LC_ALL: 'C' },
      missing: { repo, tool: 'GnuPG (gpg)' },
    });
  }
}

/** What gpg's status lines say of the signature it checked (`says`: what its stderr says, see gpgSays). */
function readVerdict(statusText: string, code: number | null, says: string): Verdict {
  const status = statusText.split('\n');
  const has = (word: string): string | undefined => status.find((l) => l.startsWith(`[GNUPG:] ${word} `) || l === `[GNUPG:] ${word}`);
  if (has('BADSIG')) return { ok: false, why: 'the signature is bad (the signed content was changed)' };
  if (has('ERRSIG') || has('NO_PUBKEY')) return { ok: false, why: 'it is not signed by a key from the key file' };
  if (has('EXPKEYSIG')) return { ok: false, why: 'the signing key has expired' };
  if (has('REVKEYSIG')) return { ok: false, why: 'the signing key was revoked' };
  if (has('EXPSIG')) return { ok: false, why: 'the signature has expired' };
  const valid = has('VALIDSIG');
  if (!valid || code !== 0) return { ok: false, why: `gpg did not accept the signature (${says || `exit ${code}`})` };
  return { ok: true, fingerprint: valid.split(' ')[2] ?? '' };
}

/** Lines of gpg's stderr that say nothing about what went wrong. */
const GPG_CHATTER = [
  /^keybox '.*' created$/,
  /trustdb created$/,
  /^WARNING: unsafe (ownership|permissions) on homedir/,
  // The counts an import ends with.
  /^(Total number processed|skipped PGP-2 keys|skipped new keys|w\/o user IDs|imported|unchanged|new user IDs|new subkeys|new signatures|new key revocations|secret keys read|secret keys imported|secret keys unchanged|not imported|signatures cleaned|user IDs cleaned): +\d+$/,
];

/**
 * What gpg's stderr says went wrong, for a one-line error: its last line
 * that says something (not the summary counts, nor the making of its home's
 * files), without gpg's "gpg: " prefix or a final full stop. A file of the
 * temporary home is named as `named` says (the key file whose copy it is),
 * else the home is: the user never saw it.
 */
export function gpgSays(stderr: string, home: string, named: Record<string, string> = {}): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^\s*gpg: /, '').trim())
    .filter((l) => l !== '' && !GPG_CHATTER.some((re) => re.test(l)));
  let last = lines.pop() ?? '';
  for (const [file, shown] of Object.entries(named)) last = last.split(file).join(shown);
  return last.split(home).join('(its temporary keyring)').replace(/\.$/, '');
}

/** `why` as the one-line error of a refused signature. */
export function unverified(repo: string, what: string, why: string): ReposnapError {
  return new ReposnapError('EUNSAFE', `repo ${repo}: ${what} refused: ${why}; nothing was published, the previous snapshot stays current`);
}
