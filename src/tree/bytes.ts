/**
 * Paths as bytes. File names on Linux are bytes, and Node's default UTF-8
 * decoding would turn a name that is not valid UTF-8 into one that does not
 * exist; every tree walk holds paths as Buffers.
 */
export type BPath = Buffer;

export function bjoin(dir: BPath, name: BPath): BPath {
  return Buffer.concat([dir, Buffer.from('/'), name]);
}

export function bpath(p: string): BPath {
  return Buffer.from(p);
}

/** Render a byte path for messages (invalid UTF-8 shown as escapes). */
export function showPath(p: BPath | string): string {
  if (typeof p === 'string') return JSON.stringify(p).slice(1, -1);
  let out = '';
  const text = p.toString('utf8');
  if (Buffer.from(text).equals(p)) return JSON.stringify(text).slice(1, -1);
  for (const b of p) out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}
