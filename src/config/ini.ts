/**
 * An INI reader with the semantics of Python's configparser as Portage uses
 * it for repos.conf (strict mode; values are interpolated afterwards, by
 * interpolate.ts, section by section):
 *
 * - `[section]` headers (text after the closing `]` is ignored, as
 *   configparser ignores it); `key = value` or `key: value`; keys are
 *   case-insensitive (folded to lower case), section names are not;
 * - `#` and `;` start a comment only at the start of a line (after optional
 *   indentation); inside a value they are kept, so `sync-uri = x#y` is `x#y`;
 * - a line indented deeper than its key continues the value (joined with
 *   newlines); blank lines inside a continued value are kept, trailing ones
 *   dropped;
 * - within one file a section or a key given twice is an error; across files
 *   later files override earlier ones key by key (configparser's read of
 *   several sources, which is how Portage merges repos.conf/*.conf).
 *
 * The `ini` npm package does none of this correctly for repos.conf (it treats
 * `#`/`;` anywhere as comments and silently merges duplicates), hence our own.
 */
import { ConfigError } from '../errors.js';

/** A value as written, with where it was written. */
export interface IniValue {
  value: string;
  file: string;
  line: number;
}

export interface IniSection {
  name: string;
  file: string;
  /** Line of the section header (the first file that opened it). */
  line: number;
  values: Map<string, IniValue>;
}

export interface IniDocument {
  /** Sections in the order they were first seen; DEFAULT is kept apart. */
  sections: Map<string, IniSection>;
  defaults: Map<string, IniValue>;
}

export const DEFAULT_SECTION = 'DEFAULT';

export function emptyDocument(): IniDocument {
  return { sections: new Map(), defaults: new Map() };
}

/**
 * configparser's section header: up to the last "]" of the line, and what
 * follows it ignored, so `[gentoo] # main tree` is section "gentoo".
 */
const SECTION_RE = /^\[(.+)\]/;
const OPTION_RE = /^(.*?)\s*([=:])\s*(.*)$/;

/**
 * Parse `text` (the content of `file`) into `doc`, overriding what earlier
 * files set. Throws ConfigError naming file and line on malformed input.
 */
export function parseIniInto(doc: IniDocument, text: string, file: string): void {
  const lines = text.split(/\r?\n/);
  const seenSections = new Set<string>();
  const seenKeys = new Map<string, Set<string>>();

  let current: { name: string; values: Map<string, IniValue> } | undefined;
  // The value being built, for continuation lines.
  let pending: { key: string; indent: number; parts: string[]; target: IniValue } | undefined;

  const finishPending = (): void => {
    if (!pending) return;
    // configparser drops trailing empty lines of a multi-line value; Portage
    // strips what is left.
    pending.target.value = pending.parts.join('\n').trim();
    pending = undefined;
  };

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const lineNo = i + 1;
    const stripped = raw.trim();
    const indent = raw.length - raw.trimStart().length;

    if (stripped.startsWith('#') || stripped.startsWith(';')) continue;

    if (stripped === '') {
      // Blank lines may sit inside a multi-line value; keep them for now.
      if (pending) pending.parts.push('');
      continue;
    }

    if (pending && indent > pending.indent) {
      pending.parts.push(stripped);
      continue;
    }
    finishPending();

    const sect = SECTION_RE.exec(stripped);
    if (sect && indent === 0) {
      const name = (sect[1] ?? '').trim();
      if (name === '') throw new ConfigError({ file, line: lineNo }, 'empty section name');
      if (seenSections.has(name)) {
        throw new ConfigError({ file, line: lineNo, section: name }, 'duplicate section in this file');
      }
      seenSections.add(name);
      seenKeys.set(name, new Set());
      if (name === DEFAULT_SECTION) {
        current = { name, values: doc.defaults };
      } else {
        let section = doc.sections.get(name);
        if (!section) {
          section = { name, file, line: lineNo, values: new Map() };
          doc.sections.set(name, section);
        }
        current = { name, values: section.values };
      }
      continue;
    }

    const opt = OPTION_RE.exec(stripped);
    if (!opt || (opt[1] ?? '') === '') {
      if (!current) {
        throw new ConfigError({ file, line: lineNo }, `text outside any section: "${truncate(stripped)}"`);
      }
      throw new ConfigError(
        { file, line: lineNo, section: current.name },
        `expected "key = value", got "${truncate(stripped)}"`,
      );
    }
    const key = (opt[1] ?? '').toLowerCase();
    if (!current) {
      throw new ConfigError({ file, line: lineNo, key }, 'key outside any section (add a [section] header above it)');
    }
    const keys = seenKeys.get(current.name);
    if (keys?.has(key)) {
      throw new ConfigError({ file, line: lineNo, section: current.name, key }, 'duplicate key in this section');
    }
    keys?.add(key);
    const target: IniValue = { value: opt[3] ?? '', file, line: lineNo };
    current.values.set(key, target);
    pending = { key, indent, parts: [opt[3] ?? ''], target };
  }
  finishPending();
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
