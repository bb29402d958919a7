/**
 * What ships and how it is installed: `npm pack` of the checkout gives a
 * tarball that installs (dependencies from npm's cache where it has them) into
 * a working `reposnap` with its man page; the tarball holds the license, the
 * man page and the systemd units, and no source map without its source; the
 * man page renders and describes every command and option `--help` lists;
 * systemd accepts the units.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, tmpdir, writeConf } from './helpers.js';

const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  license: string;
  private?: boolean;
  scripts: Record<string, string>;
};

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Every command (with its subcommands) and the options each lists in --help. */
function helpSurface(): Map<string, string[]> {
  const help = (args: string[]) => execFileSync(process.execPath, [CLI, ...args, '--help'], { encoding: 'utf8' });
  const commandsOf = (text: string) => [...(text.split(/^Commands:$/m)[1] ?? '').matchAll(/^ {2}([a-z]+)/gm)].map((m) => m[1] as string).filter((c) => c !== 'help');
  const optionsOf = (text: string) => [...(text.split(/^Options:$/m)[1]?.split(/^\S/m)[0] ?? '').matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1] as string);
  const out = new Map<string, string[]>();
  const top = help([]);
  out.set('', optionsOf(top));
  for (const c of commandsOf(top)) {
    const text = help([c]);
    const subs = commandsOf(text);
    // A command made of subcommands (stamp) is described by them.
    if (subs.length === 0) out.set(c, optionsOf(text));
    for (const sub of subs) out.set(`${c} ${sub}`, optionsOf(help([c, sub])));
  }
  return out;
}

describe('the package', () => {
  it('is MIT-licensed, publishable and builds when packed or installed from a checkout', async () => {
    expect(pkg.license).toBe('MIT');
    expect(pkg.private).toBeUndefined();
    expect(await fs.readFile(path.join(ROOT, 'LICENSE'), 'utf8')).toMatch(/^MIT License/);
    expect(pkg.scripts.prepare).toBe('npm run build');
  });

  it('packs into a tarball that installs into a working reposnap, man page included', async () => {
    const dir = tmpdir('reposnap-pack');
    // --ignore-scripts: the suite runs against the build `npm test` made; a
    // pack must not rebuild dist/ under the other tests (prepare does it
    // for anyone packing by hand).
    const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const files = packed[0]?.files.map((f) => f.path) ?? [];
    for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/cli/main.js', 'dist/sync/fill-worker.js', 'dist/index.js', 'dist/index.d.ts', 'dist/storage.d.ts', 'man/reposnap.8', 'systemd/reposnap-sync.service', 'systemd/reposnap-sync.timer', 'systemd/reposnap-mount.service', 'systemd/reposnap-sync-overlayfs.conf']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);

    const prefix = path.join(dir, 'prefix');
    execFileSync('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, packed[0]?.filename as string)], { stdio: 'ignore' });
    const bin = path.join(prefix, 'bin', 'reposnap');
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toBe(pkg.version);
    await fs.access(path.join(prefix, 'share', 'man', 'man8', 'reposnap.8'));

    // And it syncs: a local tree into a store, read back through the location.
    const work = path.join(dir, 'work');
    await fs.mkdir(path.join(work, 'upstream', 'metadata'), { recursive: true });
    await fs.writeFile(path.join(work, 'upstream', 'metadata', 'timestamp.chk'), 'T1\n');
    const conf = await writeConf(work, `[t]\nlocation = ${work}/repo\nsync-type = local\nsync-uri = ${work}/upstream\nsync-rcu = yes\nsync-rcu-store-dir = ${work}/store\n`);
    execFileSync(bin, ['-q', '-c', conf, 'sync'], { stdio: 'ignore' });
    expect(await fs.readFile(path.join(work, 'repo', 'metadata', 'timestamp.chk'), 'utf8')).toBe('T1\n');
  }, 180_000);
});

describe('the man page', () => {
  const page = path.join(ROOT, 'man', 'reposnap.8');

  it('renders without warnings', () => {
    if (!has('groff')) {
      console.log('skipping: groff is not installed');
      return;
    }
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z', page], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    if (has('man')) expect(spawnSync('man', ['-l', page], { encoding: 'utf8', env: { ...process.env, MANPAGER: 'cat', MANWIDTH: '80' } }).stdout).toMatch(/reposnap - keep repository trees/);
  });

  it('describes every command and option --help lists', async () => {
    // The page as text, with roff's escaped hyphens plain again.
    const text = (await fs.readFile(page, 'utf8')).replace(/\\-/g, '-');
    const missing: string[] = [];
    for (const [command, options] of helpSurface()) {
      if (command !== '' && !text.includes(`.BR ${command} `) && !text.includes(`.BR "${command}"`)) missing.push(command);
      for (const o of options) if (o !== '--help' && o !== '--version' && !text.includes(o)) missing.push(`${command || 'reposnap'} ${o}`);
    }
    expect(missing).toEqual([]);
  });
});

describe('the systemd units', () => {
  it('pass systemd-analyze verify', async () => {
    if (!has('systemd-analyze')) {
      console.log('skipping: systemd-analyze is not installed');
      return;
    }
    const dir = tmpdir('reposnap-units');
    const units = ['reposnap-sync.service', 'reposnap-sync.timer', 'reposnap-mount.service'];
    for (const u of units) await fs.copyFile(path.join(ROOT, 'systemd', u), path.join(dir, u));
    // --man=no: the man page the units name is not installed on this machine.
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => path.join(dir, u))], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The overlayfs drop-in, read beside the service as systemd reads drop-ins.
    await fs.mkdir(path.join(dir, 'reposnap-sync.service.d'));
    await fs.copyFile(path.join(ROOT, 'systemd', 'reposnap-sync-overlayfs.conf'), path.join(dir, 'reposnap-sync.service.d', 'overlayfs.conf'));
    const d = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'reposnap-sync.service')], { encoding: 'utf8' });
    expect(d.stderr).toBe('');
    // Mounts must be made in the system's mount namespace: nothing in the
    // mount unit may give it one of its own.
    const mount = await fs.readFile(path.join(dir, 'reposnap-mount.service'), 'utf8');
    for (const line of ['ExecStart=/usr/bin/env reposnap --quiet mount', 'Before=basic.target']) expect(mount).toContain(line);
    expect(mount).not.toMatch(/^(Protect\w+|Private\w+|ReadWritePaths|ReadOnlyPaths|MountFlags)=/m);
    const service = await fs.readFile(path.join(dir, 'reposnap-sync.service'), 'utf8');
    for (const line of ['SuccessExitStatus=75', 'ProtectSystem=strict', 'NoNewPrivileges=yes', 'PrivateTmp=yes']) expect(service).toContain(line);
    const timer = await fs.readFile(path.join(dir, 'reposnap-sync.timer'), 'utf8');
    for (const line of ['RandomizedDelaySec=', 'Persistent=yes']) expect(timer).toContain(line);
  });
});

describe('shell completion', () => {
  /** What bash completes after `words` (the last one being completed), with reposnap on PATH reading `conf`. */
  async function bashCompletes(dir: string, conf: string, words: string[]): Promise<string[]> {
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin, { recursive: true });
    await fs.writeFile(path.join(bin, 'reposnap'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`, { mode: 0o755 });
    const script = `source "${path.join(ROOT, 'completions', 'reposnap.bash')}"
COMP_WORDS=(reposnap ${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length}
_reposnap
printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, REPOSNAP_CONFIG: conf } });
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter((l) => l !== '').sort();
  }

  it('bash completes commands, options and the configured repositories', async () => {
    const dir = tmpdir('reposnap-completion');
    const conf = await writeConf(dir, `[gentoo]\nlocation = ${dir}/gentoo\nsync-type = rsync\nsync-uri = rsync://127.0.0.1/gentoo\n\n[overlay]\nlocation = ${dir}/overlay\nsync-type = git\nsync-uri = https://127.0.0.1/overlay.git\n`);
    expect(await bashCompletes(dir, conf, ['s'])).toEqual(['stamp', 'status', 'sync']);
    expect(await bashCompletes(dir, conf, ['sync', '--'])).toEqual(['--allow-older', '--dry-run', '--help', '--json', '--log-file', '--no-wait', '--verbose']);
    expect(await bashCompletes(dir, conf, ['sync', ''])).toEqual(['gentoo', 'overlay']);
    expect(await bashCompletes(dir, conf, ['--'])).toEqual(['--config', '--help', '--json', '--log-file', '--quiet', '--verbose', '--version']);
    expect(await bashCompletes(dir, conf, ['--log-file', `${dir}/log`, 'sync', ''])).toEqual(['gentoo', 'overlay']);
    expect(await bashCompletes(dir, conf, ['-q', 'verify', 'ov'])).toEqual(['overlay']);
    expect(await bashCompletes(dir, conf, ['stamp', ''])).toEqual(['help', 'run', 'show', 'touch']);
  });

  it('the zsh completion is valid zsh', () => {
    if (!has('zsh')) {
      console.log('skipping: zsh is not installed');
      return;
    }
    const r = spawnSync('zsh', ['-n', path.join(ROOT, 'completions', '_reposnap')], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
