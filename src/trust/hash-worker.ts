/**
 * A hash worker: batches of files in, digests out. Hashing is CPU work on
 * the thread that calls it; workers let sync-rsync-verify-jobs use that many
 * cores while the main thread walks the tree and reads Manifests.
 */
import { parentPort } from 'node:worker_threads';
import { hashFileSync, type HashRequest } from './hash-file.js';

parentPort?.on('message', (msg: { id: number; batch: HashRequest[] }) => {
  parentPort?.postMessage({ id: msg.id, results: msg.batch.map(hashFileSync) });
});
