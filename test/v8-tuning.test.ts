/**
 * The command line's V8 settings (src/cli/v8-tuning.ts): set before any
 * other code of reposnap runs, and in effect, on the Node running the tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

/** The built module, imported as main imports it. */
const IMPORT_TUNING = `await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/cli/v8-tuning.js')).href)});`;

/**
 * What V8 reports inlining while a small function is called hot in a
 * fresh Node, after the module is imported if `tuned`.
 */
function inliningTrace(tuned: boolean): string {
  const script = [
    tuned ? IMPORT_TUNING : '',
    'function add(a, b) { return a + b; }',
    'function loop(n) { let s = 0; for (let i = 0; i < n; i++) s = add(s, i) % 1000003; return s; }',
    'let t = 0; for (let k = 0; k < 300; k++) t += loop(10000);',
    'if (t < 0) console.log(t);',
  ].join('\n');
  return execFileSync(process.execPath, ['--trace-turbo-inlining', '--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('the command line runs with its V8 settings', () => {
  it('turns off Turbofan inlining, which this Node knows (no complaint about the flag)', () => {
    // The control: the same code is inlined without the settings, so the
    // trace would show it if the setting did nothing.
    expect(inliningTrace(false)).toMatch(/Inlining .*add/);
    // V8 names a flag it does not know on stderr, and goes on.
    const tuned = spawnSync(process.execPath, ['--input-type=module', '-e', IMPORT_TUNING], { encoding: 'utf8' });
    expect({ status: tuned.status, stdout: tuned.stdout, stderr: tuned.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(inliningTrace(true)).not.toMatch(/Inlining/);
  });

  it('sets them before any other module of reposnap is evaluated: main imports them first', () => {
    const main = readFileSync(path.join(ROOT, 'dist/cli/main.js'), 'utf8');
    const imports = [...main.matchAll(/^import\s[^;]*?['"]([^'"]+)['"];?$/gm)].map((m) => m[1]);
    expect(imports[0]).toBe('./v8-tuning.js');
  });
});
