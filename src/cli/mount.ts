/**
 * `reposnap mount [REPO...]`: mount the kept snapshots of overlayfs stores
 * that have lost their mounts (they do not survive a reboot). Every command
 * that resolves a snapshot does it first; this is for boot, before any
 * service reads a repository (systemd/reposnap-mount.service).
 */
import { ReposnapError } from '../errors.js';
import { combinedExit, type CommandContext } from './context.js';
import { errorJson } from './output.js';

export async function mountCommand(ctx: CommandContext, names: string[], opts: { json: boolean }): Promise<number> {
  const repos = ctx.repos().select(names).filter((r) => names.length > 0 || r.config.mode === 'rcu');
  const results = [];
  const errors: unknown[] = [];
  for (const repo of repos) {
    try {
      const r = await repo.mount();
      results.push({ repo: repo.name, mounted: r.mounted, failed: r.failed });
      if (r.mounted.length > 0) ctx.out.info(`${repo.name}: mounted snapshot${r.mounted.length > 1 ? 's' : ''} ${r.mounted.join(', ')}`);
      for (const f of r.failed) {
        const err = new ReposnapError('ESTORE', `repo ${repo.name}: snapshot ${f.id} cannot be mounted: ${f.error}`);
        errors.push(err);
        ctx.out.error(err);
      }
    } catch (err) {
      errors.push(err);
      results.push({ repo: repo.name, error: errorJson(err, repo.name) });
      ctx.out.error(err, repo.name);
    }
  }
  if (opts.json) ctx.out.results(results);
  return combinedExit(errors);
}
