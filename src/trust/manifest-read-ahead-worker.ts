/**
 * The thread that reads changed sub-Manifests ahead during the fill
 * (manifest-read-ahead.ts): batches of paths in, what was read out. It
 * runs at the lowest CPU priority (on Linux a thread has its own), so that
 * it takes only the time the fill leaves idle.
 *
 * Once told the fill is over, it reads again what it read before, and
 * flags each that reads the same (see ReadAheadManifest.final); what it
 * reads from then on is final as read.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { readManifestAhead, readsSame, type ConfirmedReply, type ReadAheadReply, type ReadAheadRequest } from './read-manifest-ahead.js';

try {
  // 0: the calling thread, on Linux.
  setPriority(0, 19);
} catch {
  // Not allowed, or not Linux: read ahead at the usual priority.
}

let fillEnded = false;
let reads = 0;
/** Read while the fill was still going, the last read of each path: to read again once it is over. */
const unconfirmed = new Map<string, { seq: number; root: string; bytes: Buffer }>();

parentPort?.on('message', (req: ReadAheadRequest) => {
  if (req.kind === 'fill-ended') {
    fillEnded = true;
    const flags = new Uint8Array(req.confirmed);
    for (const [p, u] of unconfirmed) if (u.seq < flags.length && readsSame(u.root, p, u.bytes)) Atomics.store(flags, u.seq, 1);
    unconfirmed.clear();
    parentPort?.postMessage({ confirmed: true } satisfies ConfirmedReply);
    return;
  }
  const { root, baseRoot, paths } = req;
  const reply: ReadAheadReply = paths.map((p) => {
    const result = readManifestAhead(root, baseRoot, p);
    if (!result) return { path: p };
    const seq = reads++;
    if (fillEnded) result.final = true;
    else unconfirmed.set(p, { seq, root, bytes: result.bytes });
    return { path: p, result, seq };
  });
  parentPort?.postMessage(reply);
});
