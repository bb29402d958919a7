/**
 * The fill step in a process of its own: what `sync-user` and `sync-umask`
 * run in, started by fill.ts under setpriv (the user and group) and a shell
 * that sets the umask. It reads the repository's configuration and the fill
 * context as JSON on stdin, fills the target, and writes the result (or the
 * error) as JSON on stdout. The transaction's lock descriptors arrive as fds
 * 3 and up, so the target stays locked for as long as this process or any
 * tool it runs is alive.
 */
import type { RepoConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import { createSource } from '../sources/index.js';
import type { FillContext } from '../sources/source.js';

export interface WorkerRequest {
  config: RepoConfig;
  ctx: Omit<FillContext, 'onProgress' | 'lockFds'>;
  lockFdCount: number;
}

export type WorkerReply = { ok: true; result: unknown } | { ok: false; code: string; message: string };

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as WorkerRequest;
  let reply: WorkerReply;
  try {
    const lockFds = Array.from({ length: req.lockFdCount }, (_, i) => 3 + i);
    const result = await createSource(req.config).fill({ ...req.ctx, lockFds });
    reply = { ok: true, result };
  } catch (err) {
    reply =
      err instanceof ReposnapError
        ? { ok: false, code: err.code, message: err.message }
        : { ok: false, code: 'EINTERNAL', message: err instanceof Error ? err.message : String(err) };
  }
  process.stdout.write(JSON.stringify(reply));
}

void main();
