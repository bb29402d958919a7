/**
 * configparser's basic interpolation, as Portage reads repos.conf with it:
 * `%(name)s` is replaced by option `name` (case-folded) of the same section,
 * of DEFAULT, or of the built-in defaults Portage gives the parser (EPREFIX,
 * EROOT, PORTAGE_CONFIGROOT, ROOT); `%%` is a literal `%`; any other `%` is
 * an error, since Portage refuses the whole file over it (write `%%` for a
 * literal one, as in a URL's `%20`). References nest up to 10 deep, as in
 * configparser.
 */
import path from 'node:path';
import { ConfigError, type ConfigPosition } from '../errors.js';

const MAX_DEPTH = 10;
const REFERENCE_RE = /^%\(([^)]+)\)s/;

/** The built-in defaults, from the environment as Portage derives them. */
export interface BuiltinDefaults {
  eprefix: string;
  root: string;
  eroot: string;
  portage_configroot: string;
}

export function builtinDefaults(env: NodeJS.ProcessEnv): BuiltinDefaults {
  const eprefix = (env.EPREFIX ?? '').replace(/\/+$/, '');
  const root = withSlash(env.ROOT || '/');
  const configRoot = withSlash(env.PORTAGE_CONFIGROOT || eprefix || '/');
  return {
    eprefix,
    root,
    eroot: `${root.replace(/\/+$/, '')}${eprefix}/`,
    portage_configroot: configRoot,
  };
}

function withSlash(p: string): string {
  const n = path.posix.normalize(p);
  return n.endsWith('/') ? n : `${n}/`;
}

/**
 * `value` with its references replaced. `lookup` finds an option's raw
 * value by case-folded name; `at` says where the value was written, for
 * errors.
 */
export function interpolate(value: string, lookup: (name: string) => string | undefined, at: ConfigPosition, depth = 0): string {
  if (!value.includes('%')) return value;
  if (depth > MAX_DEPTH) throw new ConfigError(at, `%(...)s references nest more than ${MAX_DEPTH} deep (a reference to itself?)`);
  let out = '';
  let rest = value;
  while (rest !== '') {
    const p = rest.indexOf('%');
    if (p < 0) return out + rest;
    out += rest.slice(0, p);
    rest = rest.slice(p);
    const next = rest[1];
    if (next === '%') {
      out += '%';
      rest = rest.slice(2);
    } else if (next === '(') {
      const m = REFERENCE_RE.exec(rest);
      if (!m) throw new ConfigError(at, `bad %(...)s reference in "${show(value)}" (write %% for a literal %)`);
      const name = (m[1] as string).toLowerCase();
      const referenced = lookup(name);
      if (referenced === undefined) throw new ConfigError(at, `%(${m[1]})s refers to no option "${name}" in this section, DEFAULT or the built-in defaults (EPREFIX, EROOT, PORTAGE_CONFIGROOT, ROOT)`);
      out += interpolate(referenced, lookup, at, depth + 1);
      rest = rest.slice(m[0].length);
    } else {
      throw new ConfigError(at, `a lone % in "${show(value)}": Portage refuses the whole file over it; write %% for a literal %`);
    }
  }
  return out;
}

function show(v: string): string {
  return v.length > 60 ? `${v.slice(0, 57)}...` : v;
}
