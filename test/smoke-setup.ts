/** Compile bench/ and torture/ once before the smoke runs use dist-bench/ and dist-torture/. */
import { execFileSync } from 'node:child_process';
import { ROOT } from './helpers.js';

export default function setup(): void {
  for (const project of ['tsconfig.bench.json', 'tsconfig.torture.json']) {
    execFileSync('npx', ['tsc', '-p', project], { cwd: ROOT, stdio: 'inherit' });
  }
}
