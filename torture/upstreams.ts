/**
 * One upstream per source type, each able to serve two trees, A and B, so
 * that a test can sync A, interrupt the update to B anywhere, and compare
 * what the next sync publishes with B byte for byte: content, modes,
 * owners (as root), symlinks, deletions.
 *
 * B differs from A in every way a fill handles: a folder deleted with its
 * contents, files added and rewritten, a mode changed, a symlink retargeted,
 * a file replaced by a folder, and (local and rsync, as root) an owner. The
 * mode and owner change come with a content change: a change of metadata
 * alone is the plan-then-apply issue's case (rsync changes a shared inode).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isRoot, treeDigest, writeTree, type TreeSpec } from './lib.js';

export type SourceType = 'local' | 'rsync' | 'git' | 'tarball';
export const SOURCE_TYPES: SourceType[] = ['local', 'rsync', 'git', 'tarball'];

const NOBODY = 65534;

export const TREE_A: TreeSpec = {
  'metadata/timestamp.chk': 'Mon Nov 23 00:00:01 UTC 2026\n',
  'cat-a/pkg/pkg-1.ebuild': 'EAPI=8\nSLOT=0\n',
  'cat-a/pkg/Manifest': 'DIST pkg-1.tar.gz 100 BLAKE2B aa\n',
  'doomed/one': 'goes with its folder\n',
  'doomed/sub/two': 'so does this\n',
  'scripts/tool.sh': { content: '#!/bin/sh\necho tool\n', mode: 0o644 },
  'link': { symlink: 'cat-a' },
  'becomes-dir': 'a file for now\n',
  'unchanged/README': 'the same in both trees\n',
  'cat-a/owned': 'root owns this\n',
};

/** Turn a tree written as A into B, in place (as a maintainer's commit would). */
export async function makeTreeB(root: string, opts: { owners: boolean }): Promise<void> {
  await fs.rm(path.join(root, 'doomed'), { recursive: true });
  await fs.rm(path.join(root, 'becomes-dir'));
  await writeTree(root, {
    'metadata/timestamp.chk': 'Tue Nov 24 00:00:01 UTC 2026 (b)\n',
    'cat-a/pkg/pkg-2.ebuild': 'EAPI=8\nSLOT=0\nKEYWORDS="~amd64"\n',
    'cat-a/pkg/Manifest': 'DIST pkg-1.tar.gz 100 BLAKE2B aa\nDIST pkg-2.tar.gz 200 BLAKE2B bb\n',
    'scripts/tool.sh': { content: '#!/bin/sh\necho tool, executable now\n', mode: 0o755 },
    'link': { symlink: 'metadata' },
    'becomes-dir/inside': 'now a folder\n',
  });
  if (opts.owners && isRoot) {
    await fs.writeFile(path.join(root, 'cat-a', 'owned'), 'given to nobody\n');
    await fs.lchown(path.join(root, 'cat-a', 'owned'), NOBODY, NOBODY);
  }
}

export interface Upstream {
  type: SourceType;
  /** repos.conf lines for this source (sync-type, sync-uri). */
  conf: string;
  /** Serve tree A (from scratch). */
  serveA(): Promise<void>;
  /** Serve tree B. */
  serveB(): Promise<void>;
  /** The digest a location must have when it holds what upstream serves now. */
  expected(): Promise<string>;
  close(): void;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.org', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
  }).trim();
}

/** Digests compare owners where the source carries them (local, rsync as root). */
export async function digest(root: string): Promise<string> {
  return treeDigest(root, { owners: true });
}

export async function makeUpstream(type: SourceType, dir: string): Promise<Upstream> {
  const tree = path.join(dir, 'upstream');
  const writeA = async (): Promise<void> => {
    await fs.rm(tree, { recursive: true, force: true });
    await writeTree(tree, TREE_A);
  };

  if (type === 'local' || type === 'rsync') {
    return {
      type,
      conf: `sync-type = ${type}\nsync-uri = ${tree}\n`,
      serveA: writeA,
      serveB: () => makeTreeB(tree, { owners: true }),
      expected: () => digest(tree),
      close: () => undefined,
    };
  }

  if (type === 'git') {
    const bare = path.join(dir, 'up.git');
    await writeA();
    git(tree, 'init', '-q');
    git(tree, 'add', '-A');
    git(tree, 'commit', '-qm', 'A');
    const a = git(tree, 'rev-parse', 'HEAD');
    await makeTreeB(tree, { owners: false });
    git(tree, 'add', '-A');
    git(tree, 'commit', '-qm', 'B');
    const b = git(tree, 'rev-parse', 'HEAD');
    git(dir, 'clone', '-q', '--bare', tree, bare);
    let served = a;
    const serve = (rev: string): void => {
      git(bare, 'update-ref', 'refs/heads/main', rev);
      served = rev;
    };
    return {
      type,
      conf: `sync-type = git\nsync-uri = file://${bare}\n`,
      serveA: () => Promise.resolve(serve(a)),
      serveB: () => Promise.resolve(serve(b)),
      async expected() {
        const out = path.join(dir, `checkout-${served.slice(0, 8)}`);
        await fs.rm(out, { recursive: true, force: true });
        await fs.mkdir(out);
        execFileSync('sh', ['-c', `git --git-dir='${bare}' archive ${served} | tar -x --no-same-permissions -C '${out}'`]);
        return digest(out);
      },
      close: () => undefined,
    };
  }

  // tarball: a tar of the tree, served over HTTP on 127.0.0.1 with an ETag.
  let body = Buffer.alloc(0);
  let etag = '';
  const server = http.createServer((req, res) => {
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
    res.writeHead(200, { etag, 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let n = 0;
  const pack = (): void => {
    body = execFileSync('tar', ['-C', tree, '-cf', '-', '.'], { maxBuffer: 1 << 30 });
    etag = `"v${++n}"`;
  };
  return {
    type,
    conf: `sync-type = tarball\nsync-uri = http://127.0.0.1:${port}/snapshot.tar\n`,
    async serveA() {
      await writeA();
      pack();
    },
    async serveB() {
      await makeTreeB(tree, { owners: false });
      pack();
    },
    expected: () => digest(tree),
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}
