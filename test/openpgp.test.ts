/**
 * Authenticity, first part: git commit signatures checked against the key
 * file with GnuPG before anything is applied, and verification keys that
 * reposnap does not honour yet refused instead of accepted in silence. Keys
 * are made by gpg here; commits are signed by git with them.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { gpgSays, Keyring } from '../src/trust/openpgp.js';
import { forgetKeys, makeSigningKey, runCli, tmpdir, writeConf, writeTree } from './helpers.js';

afterAll(forgetKeys);

function git(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.org', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: cwd, ...env },
  }).trim();
}

describe('sync-git-verify-commit-signature', () => {
  it('publishes commits signed by a key of the key file, refuses unsigned and foreign ones before applying anything', async () => {
    const dir = tmpdir('openpgp');
    const signer = makeSigningKey(dir, 'signer');
    const stranger = makeSigningKey(dir, 'stranger');
    const work = path.join(dir, 'work');
    const bare = path.join(dir, 'up.git');
    await fs.mkdir(work);
    git(work, {}, 'init', '-q');
    const commit = async (msg: string, key?: { home: string; fpr: string }): Promise<void> => {
      await writeTree(work, { [`cat/${msg}.ebuild`]: `${msg}\n` });
      git(work, {}, 'add', '-A');
      if (key) git(work, { GNUPGHOME: key.home }, '-c', 'gpg.program=gpg', '-c', `user.signingkey=${key.fpr}`, 'commit', '-q', '-S', '-m', msg);
      else git(work, {}, 'commit', '-q', '-m', msg);
      git(work, {}, 'push', '-q', '-f', bare, 'HEAD:refs/heads/main');
    };
    execFileSync('git', ['init', '-q', '--bare', '--initial-branch=main', bare]);
    await commit('one', signer);
    const conf = await writeConf(
      dir,
      `[test]\nlocation = ${path.join(dir, 'repo')}\nsync-type = git\nsync-uri = file://${bare}\nsync-rcu = yes\nsync-rcu-store-dir = ${path.join(dir, 'store')}\n` +
        `sync-git-verify-commit-signature = yes\nsync-openpgp-key-path = ${signer.pub}\n`,
    );
    const first = await runCli(['-c', conf, 'sync']);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);

    for (const [msg, key, why] of [
      ['unsigned', undefined, /commit [0-9a-f]{12} refused: it is not signed/],
      ['foreign', stranger, /commit [0-9a-f]{12} refused: it is not signed by a key from the key file/],
    ] as const) {
      await commit(msg, key);
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code, msg).toBe(1);
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/nothing was published, the previous snapshot stays current\n$/);
      expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');
      await expect(fs.stat(path.join(dir, 'repo', 'cat', `${msg}.ebuild`))).rejects.toThrow();
    }

    // A signed commit whose message was changed afterwards: the signature is bad.
    await commit('signed', signer);
    const object = execFileSync('git', ['--git-dir', bare, 'cat-file', 'commit', 'main']).toString('latin1').replace(/\nsigned\n$/, '\ntampered\n');
    const forged = execFileSync('git', ['--git-dir', bare, 'hash-object', '-t', 'commit', '-w', '--stdin'], { input: Buffer.from(object, 'latin1') }).toString().trim();
    execFileSync('git', ['--git-dir', bare, 'update-ref', 'refs/heads/main', forged]);
    const tampered = await runCli(['-c', conf, 'sync']);
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/commit [0-9a-f]{12} refused: the signature is bad/);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/1');

    git(work, {}, 'reset', '-q', '--hard', 'HEAD');
    await commit('two', signer);
    const last = await runCli(['-c', conf, 'sync']);
    expect(last.code).toBe(0);
    expect(await fs.readlink(path.join(dir, 'store', 'latest'))).toBe('snapshots/2');
    expect(await fs.readFile(path.join(dir, 'repo', 'cat', 'two.ebuild'), 'utf8')).toBe('two\n');
  });

  it('a key path that is missing, unreadable or holds no key is a configuration error (exit 2), not a silent downgrade', async () => {
    const dir = tmpdir('openpgp-conf');
    const base = (extra: string): string =>
      `[test]\nlocation = ${path.join(dir, 'repo')}\nsync-type = git\nsync-uri = file://${path.join(dir, 'up.git')}\nsync-rcu = yes\nsync-rcu-store-dir = ${path.join(dir, 'store')}\nsync-git-verify-commit-signature = yes\n${extra}`;
    execFileSync('git', ['init', '-q', '--bare', '--initial-branch=main', path.join(dir, 'up.git')]);
    const work = path.join(dir, 'work');
    await fs.mkdir(work);
    git(work, {}, 'init', '-q');
    await writeTree(work, { f: 'x\n' });
    git(work, {}, 'add', '-A');
    git(work, {}, 'commit', '-q', '-m', 'x');
    git(work, {}, 'push', '-q', path.join(dir, 'up.git'), 'HEAD:refs/heads/main');
    await fs.writeFile(path.join(dir, 'junk.asc'), 'not a key\n');
    for (const [extra, why] of [
      ['', /repos\.conf:7: \[test\] sync-git-verify-commit-signature: needs sync-openpgp-key-path/],
      [`sync-openpgp-key-path = ${path.join(dir, 'missing.asc')}\n`, /repos\.conf:8: \[test\] sync-openpgp-key-path: cannot read the key file .*missing\.asc \(ENOENT\)/],
      // gpg's reason, once prefixed, without its summary counts.
      [`sync-openpgp-key-path = ${path.join(dir, 'junk.asc')}\n`, /repos\.conf:8: \[test\] sync-openpgp-key-path: \S*junk\.asc holds no OpenPGP key that can be used \(gpg: no valid OpenPGP data found\)\n$/],
    ] as const) {
      const conf = await writeConf(dir, base(extra));
      const r = await runCli(['-c', conf, 'sync']);
      expect(r.code, extra).toBe(2);
      expect(r.stderr).toMatch(why);
      await expect(fs.lstat(path.join(dir, 'repo'))).rejects.toThrow();
    }
  });
});

describe('a key file gpg cannot use', () => {
  it('is refused with what gpg says of it, naming neither gpg twice nor its temporary keyring', async () => {
    const dir = tmpdir('openpgp-junk');
    const signer = makeSigningKey(dir, 'signer');
    const key = await fs.readFile(signer.pub, 'utf8');
    const position = { file: path.join(dir, 'repos.conf'), line: 3, section: 'test', key: 'sync-openpgp-key-path' };
    // gpg's reason, last, in parentheses; it may have some of its own
    // ("packet(6) with unknown version 119", for some random bytes).
    const gpgSaid = /\(gpg: (?:[^()]|\([^()]*\))+\)$/;
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['junk.asc', 'not a key\n', /\(gpg: no valid OpenPGP data found\)$/],
      ['random.gpg', randomBytes(512), gpgSaid],
      // The armor's body cut off after its first line: a start of a key, no user ID.
      ['cut.asc', key.split('\n').slice(0, 3).join('\n') + '\n-----END PGP PUBLIC KEY BLOCK-----\n', gpgSaid],
    ];
    for (const [name, content, reason] of cases) {
      const file = path.join(dir, name);
      await fs.writeFile(file, content);
      const err = (await Keyring.open('test', { file, position }).then(
        () => undefined,
        (e: unknown) => e,
      )) as Error | undefined;
      expect(err, name).toBeInstanceOf(ConfigError);
      const message = (err as Error).message;
      expect(message, name).toContain(`${file} holds no OpenPGP key that can be used (gpg: `);
      expect(message, name).toMatch(reason);
      expect(message, name).not.toMatch(/gpg: gpg:|Total number processed|reposnap-gpg-|\n/);
    }
  });

  it('gpgSays keeps the line that says what went wrong', () => {
    const home = '/tmp/reposnap-gpg-abc';
    expect(gpgSays(`gpg: keybox '${home}/pubring.kbx' created\ngpg: no valid OpenPGP data found.\ngpg: Total number processed: 0\n`, home)).toBe('no valid OpenPGP data found');
    expect(gpgSays(`gpg: premature eof while reading rest of packet\ngpg: key 03B1CB7613F9806B: new key but contains no user ID - skipped\ngpg: Total number processed: 1\ngpg:           w/o user IDs: 1\n`, home)).toBe('key 03B1CB7613F9806B: new key but contains no user ID - skipped');
    expect(gpgSays(`gpg: can't open '${home}/keys': Permission denied\n`, home, { [`${home}/keys`]: '/etc/keys/gentoo.asc' })).toBe("can't open '/etc/keys/gentoo.asc': Permission denied");
    expect(gpgSays(`gpg: can't open '${home}/signature'\n`, home)).toBe("can't open '(its temporary keyring)/signature'");
    expect(gpgSays('gpg: Signature made Mon Dec  7 09:00:00 2026 UTC\ngpg:                using RSA key 0123456789ABCDEF\n', home)).toBe('using RSA key 0123456789ABCDEF');
    expect(gpgSays('gpg: keyblock resource failed: 22\n', home)).toBe('keyblock resource failed: 22');
    expect(gpgSays('', home)).toBe('');
  });
});

describe('verification keys that need no network', () => {
  it('warns that key refresh is not done; sync-rsync-verify-metamanifest = no is fine', async () => {
    const dir = tmpdir('keyrefresh');
    const section = (type: string, uri: string, extra: string): string =>
      `[test]\nlocation = ${path.join(dir, 'repo')}\nsync-type = ${type}\nsync-uri = ${uri}\n${extra}\n`;
    expect((await runCli(['-c', await writeConf(dir, section('rsync', dir, 'sync-rsync-verify-metamanifest = no')), 'status'])).code).toBe(0);
    const r = await runCli(['-c', await writeConf(dir, section('rsync', dir, 'sync-openpgp-keyserver = hkps://keys.example.org')), 'status']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[test\] sync-openpgp-keyserver: not done: reposnap never fetches or refreshes keys over the network/);
  });
});
