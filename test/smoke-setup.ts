/**
 * Compile bench/ and torture/ once before the smoke runs use dist-bench/ and
 * dist-torture/. A global setup runs outside the test workers: it must not
 * import vitest (nor the test helpers, which do).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export default function setup(): void {
  for (const project of ['tsconfig.bench.json', 'tsconfig.torture.json']) {
    execFileSync('npx', ['tsc', '-p', project], { cwd: ROOT, stdio: 'inherit' });
  }
}
