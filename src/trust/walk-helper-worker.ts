/**
 * The thread that shares an incremental walk's stats (walk-helper.ts):
 * each job names its paths and the shared counter both threads take chunks
 * from. At the usual priority: the walk waits for these stats, unlike the
 * Manifests read ahead during the fill.
 */
import { parentPort } from 'node:worker_threads';
import { runListJob, runStatJob, type ListedReply, type WalkHelperRequest } from './walk-helper.js';

parentPort?.on('message', (req: WalkHelperRequest) => {
  const paths = req.paths.split('\0');
  if (req.kind === 'stat') runStatJob(paths, req.shared, true);
  else runListJob(paths, req.claim, true, (listed) => parentPort?.postMessage({ job: req.job, listed } satisfies ListedReply));
});
