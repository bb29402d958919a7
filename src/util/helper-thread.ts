/**
 * A helper thread that may not be there: its script exists only in the
 * build (the tests of the sources run without one), and a resource limit
 * can refuse a thread. A caller without one does the work on its own
 * thread, so nothing here throws.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Start the worker script at `script`, or undefined where there is none to
 * be had. `onGone` is called when it fails or ends (possibly more than
 * once). Nothing waits for it, so a process that is done does not wait for
 * its helpers, unless `keepsAlive`: a thread holding work that the process
 * awaits (and closes when done).
 */
export function startHelperThread<Reply>(
  script: URL,
  onMessage: (reply: Reply, worker: Worker) => void,
  onGone: (worker: Worker) => void,
  opts: { keepsAlive?: boolean } = {},
): Worker | undefined {
  const file = fileURLToPath(script);
  if (!existsSync(file)) return undefined;
  let worker: Worker;
  try {
    worker = new Worker(file);
  } catch {
    return undefined;
  }
  if (!opts.keepsAlive) worker.unref();
  worker.on('message', (reply: Reply) => onMessage(reply, worker));
  const gone = (): void => onGone(worker);
  worker.on('error', gone);
  worker.on('messageerror', gone);
  worker.on('exit', gone);
  return worker;
}
