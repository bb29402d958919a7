/**
 * The fill step in a process of its own: what `sync-user` and `sync-umask`
 * run in, started by fill.ts under setpriv (the user and group) and a shell
 * that sets the umask. The transaction's lock descriptors arrive as fds 3
 * and up, so the target stays locked for as long as this process or any tool
 * it runs is alive.
 *
 * It speaks JSON lines. stdin: the request (configuration and fill
 * context), then one answer per question asked. stdout: `writing` (the
 * source is about to write; wait for the parent to record it, see
 * FillContext.beginWriting), `progress` and `output` (a tool's line) when
 * the parent listens for them, then one `result` or `error`.
 */
import { createInterface } from 'node:readline';
import type { RepoConfig } from '../config/repos.js';
import { ReposnapError } from '../errors.js';
import { createSource } from '../sources/index.js';
import type { FillContext, SourceProgress } from '../sources/source.js';

export interface WorkerRequest {
  config: RepoConfig;
  ctx: Omit<FillContext, 'onProgress' | 'onToolOutput' | 'lockFds' | 'beginWriting'>;
  lockFdCount: number;
  /** What the parent wants to hear of as it happens. */
  listen?: { progress: boolean; output: boolean };
}

/** Worker to parent. */
export type WorkerMessage =
  | { type: 'writing'; revision?: string }
  | { type: 'progress'; progress: SourceProgress }
  | { type: 'output'; tool: string; line: string }
  | { type: 'result'; result: unknown }
  | { type: 'error'; code: string; message: string };

/** Parent to worker, after a `writing`. */
export type WorkerAnswer = { ok: true } | { ok: false; message: string };

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new ReposnapError('EINTERNAL', 'the parent process closed the worker\'s input');
    return r.value as string;
  };
  const send = (m: WorkerMessage): void => {
    process.stdout.write(`${JSON.stringify(m)}\n`);
  };
  let reply: WorkerMessage;
  try {
    const req = JSON.parse(await next()) as WorkerRequest;
    const lockFds = Array.from({ length: req.lockFdCount }, (_, i) => 3 + i);
    const beginWriting = async (revision?: string): Promise<void> => {
      send({ type: 'writing', ...(revision !== undefined ? { revision } : {}) });
      const answer = JSON.parse(await next()) as WorkerAnswer;
      if (!answer.ok) throw new ReposnapError('ESTORE', answer.message);
    };
    const result = await createSource(req.config).fill({
      ...req.ctx,
      lockFds,
      beginWriting,
      ...(req.listen?.progress ? { onProgress: (progress: SourceProgress) => send({ type: 'progress', progress }) } : {}),
      ...(req.listen?.output ? { onToolOutput: (tool: string, line: string) => send({ type: 'output', tool, line }) } : {}),
    });
    reply = { type: 'result', result };
  } catch (err) {
    reply =
      err instanceof ReposnapError
        ? { type: 'error', code: err.code, message: err.message }
        : { type: 'error', code: 'EINTERNAL', message: err instanceof Error ? err.message : String(err) };
  }
  send(reply);
  process.stdin.destroy();
}

void main();
