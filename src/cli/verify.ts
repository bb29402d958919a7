/** `reposnap verify REPO [--full]`: check the current tree against its MetaManifest. */
import type { CommandContext } from './context.js';
import { formatBytes } from './output.js';

export async function verifyCommand(ctx: CommandContext, name: string, opts: { full: boolean; json: boolean }): Promise<number> {
  const repo = ctx.repos().get(name);
  const r = await repo.verify({ full: opts.full });
  const what = r.snapshot === null ? r.path : `snapshot ${r.snapshot}`;
  ctx.out.info(
    `${r.repo}: ${what} verified (${r.full ? 'full' : 'quick'}): signed by ${r.signedBy}, TIMESTAMP ${r.timestamp}; ${r.files} files, ${r.hashed} hashed (${formatBytes(r.bytesHashed)})`,
  );
  if (opts.json) ctx.out.results(r);
  return 0;
}
