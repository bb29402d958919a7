/** `reposnap migrate REPO`: move a plain-directory location into the store now. */
import type { CommandContext } from './context.js';

export async function migrateCommand(ctx: CommandContext, name: string, opts: { wait: boolean; json: boolean }): Promise<number> {
  const repo = ctx.repos().get(name);
  const meta = await repo.migrate({ wait: opts.wait });
  if (opts.json) ctx.out.results({ repo: name, migrated: meta?.id ?? null });
  else if (meta) ctx.out.info(`${name}: migrated ${repo.config.location} into the store as snapshot ${meta.id}`);
  else ctx.out.info(`${name}: nothing to migrate (${repo.config.location} is not a plain directory with content)`);
  return 0;
}
