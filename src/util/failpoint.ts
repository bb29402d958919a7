/**
 * Failpoints: named instants of an update where a test (or a person
 * reproducing a report) can stop reposnap and interrupt it, so that "killed
 * during the seal" means exactly that and not "killed at a random time that
 * usually falls there".
 *
 * With REPOSNAP_FAILPOINT=<name> in the environment, reaching <name> prints
 * "reposnap: failpoint <name>" on stderr and waits forever: the event loop
 * stays free, so SIGINT and SIGTERM take their normal course (they abort the
 * sync, which goes on from the failpoint to stop as it would have there),
 * and SIGKILL leaves everything exactly as it was at that instant. Without
 * the variable a failpoint costs one comparison. Names used:
 *
 *   staged       the staging tree is open (cloned or resumed), nothing written yet
 *   fill-midway  a fill has written part of the update (a temporary may exist;
 *                rsync: it has exited, the fill has not reported back)
 *   filled       the fill finished and is recorded; verification is next
 *   sealed       the tree is durable and snapshot N's metadata written; not yet renamed
 *   renamed      snapshots/N exists; `latest` still names the previous snapshot
 */
import { abortSignal } from './abort.js';

const wanted = process.env.REPOSNAP_FAILPOINT;

export async function failpoint(name: string): Promise<void> {
  if (wanted !== name) return;
  process.stderr.write(`reposnap: failpoint ${name}\n`);
  const signal = abortSignal();
  if (signal?.aborted) return;
  // A timer keeps the process alive; it never fires in practice.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2 ** 31 - 1);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
