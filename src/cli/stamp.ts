/**
 * `reposnap stamp touch|show|run DIR`: modification stamps from the command
 * line, so that existing tools that modify a tree (a package manager writing
 * /var/db/pkg) can be wrapped without changing them.
 */
import path from 'node:path';
import { ReposnapError } from '../errors.js';
import { Modification, modify, readStamp } from '../stamp/stamp.js';
import type { CommandContext } from './context.js';
import { exitLike, runForwarding } from './signals.js';

export async function stampTouch(ctx: CommandContext, dir: string, opts: { json: boolean }): Promise<number> {
  await modify(path.resolve(dir), () => Promise.resolve());
  const s = await readStamp(path.resolve(dir));
  if (opts.json) ctx.out.results({ dir, counter: s.counter });
  ctx.out.info(`${dir}: stamped (counter ${s.counter})`);
  return 0;
}

export async function stampShow(ctx: CommandContext, dir: string, opts: { json: boolean }): Promise<number> {
  const s = await readStamp(path.resolve(dir));
  if (opts.json) {
    ctx.out.results({ dir, counter: s.counter, inProgress: s.inProgress, pid: s.pid, time: s.time, writerDead: s.writerDead, signature: s.signature });
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
  let end;
  try {
    end = await runForwarding(argv, { stdio: 'inherit' });
  } finally {
    // Stamped "done" whatever the command did: it has stopped modifying.
    await m.end();
  }
  return exitLike(end.code, end.signal);
}
