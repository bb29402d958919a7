/**
 * The thread that reads changed sub-Manifests ahead during the fill
 * (manifest-read-ahead.ts): batches of paths in, what was read out. It
 * runs at the lowest CPU priority (on Linux a thread has its own), so that
 * it takes only the time the fill leaves idle.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { readManifestAhead, type ReadAheadReply, type ReadAheadRequest } from './read-manifest-ahead.js';

try {
  // 0: the calling thread, on Linux.
  setPriority(0, 19);
} catch {
  // Not allowed, or not Linux: read ahead at the usual priority.
}

parentPort?.on('message', ({ root, baseRoot, paths }: ReadAheadRequest) => {
  const reply: ReadAheadReply = paths.map((p) => {
    const result = readManifestAhead(root, baseRoot, p);
    return result ? { path: p, result } : { path: p };
  });
  parentPort?.postMessage(reply);
});
