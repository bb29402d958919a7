/**
 * `reposnap stamp touch|show|run DIR`: modification stamps from the command
 * line, so that existing tools that modify a tree (a package manager writing
 * /var/db/pkg) can be wrapped without changing them.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { errnoCode, ReposnapError } from '../errors.js';
import { Modification, modify, readStamp } from '../stamp/stamp.js';
import type { CommandContext } from './context.js';
import { exitLike, forwardSignals } from './signals.js';

export async function stampTouch(ctx: CommandContext, dir: string): Promise<number> {
  await modify(path.resolve(dir), () => Promise.resolve());
  const s = await readStamp(path.resolve(dir));
  ctx.out.info(`${dir}: stamped (counter ${s.counter})`);
  return 0;
}

export async function stampShow(ctx: CommandContext, dir: string, opts: { json: boolean }): Promise<number> {
  const s = await readStamp(path.resolve(dir));
  if (opts.json) {
    ctx.out.json({ counter: s.counter, inProgress: s.inProgress, pid: s.pid, time: s.time, writerDead: s.writerDead, signature: s.signature });
    return 0;
  }
  const state = s.inProgress ? (s.writerDead ? `modification by pid ${s.pid} in progress, but that writer died` : `being modified by pid ${s.pid}`) : 'not being modified';
  ctx.out.print(`${dir}: counter ${s.counter}, ${state}${s.time ? `, last stamped ${s.time}` : ', never stamped'}`);
  return 0;
}

export async function stampRun(_ctx: CommandContext, dir: string, args: string[]): Promise<number> {
  const argv = args[0] === '--' ? args.slice(1) : args;
  if (argv.length === 0) throw new ReposnapError('EUSAGE', 'stamp run needs a command: reposnap stamp run DIR -- CMD [ARGS...]');
  const m = await Modification.begin(path.resolve(dir));
  let result: { code: number | null; signal: NodeJS.Signals | null };
  try {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: 'inherit' });
    const stop = forwardSignals(child);
    result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    })
      .catch((err: unknown) => {
        const code = errnoCode(err);
        throw new ReposnapError('EUSAGE', `cannot run ${argv[0]}: ${code === 'ENOENT' ? 'command not found' : (code ?? String(err))}`, {
          exitCode: code === 'ENOENT' ? 127 : 126,
        });
      })
      .finally(stop);
  } finally {
    // Stamped "done" whatever the command did: it has stopped modifying.
    await m.end();
  }
  return exitLike(result.code, result.signal);
}
