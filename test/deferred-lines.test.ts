/**
 * Deferred lines are kept as numbers (Manifest, line, where it starts),
 * and a line's text is cut again from its Manifest's text when it is taken
 * out: what comes out must be exactly what parseManifest passed over, for
 * thousands of lines (past the arrays' first growth), whichever way they
 * waited (on a holder, by file, by sub-Manifest folder).
 */
import { describe, expect, it } from 'vitest';
import { DeferredLines, type DeferredLine, type LineHolder } from '../src/trust/deferred-lines.js';
import { entryHead, parseManifest } from '../src/trust/manifest-format.js';
import type { IndexPlaces } from '../src/trust/tree-walk.js';

const HASH = `BLAKE2B ${'ab'.repeat(64)} SHA512 ${'cd'.repeat(64)}`;

/** A Manifest's text with `n` DATA lines in folder `pkg-*`, blank lines, blanks around some. */
function manifestText(n: number, sub = false): string {
  const lines = ['TIMESTAMP 2026-12-01T00:00:00Z', ''];
  for (let i = 0; i < n; i++) {
    const line = `DATA pkg-${i % 7}/file-${i}.ebuild ${i} ${HASH}`;
    lines.push(i % 5 === 0 ? `  ${line}\t` : line);
    if (i % 11 === 0) lines.push('   ');
  }
  if (sub) lines.push(`MANIFEST sub/Manifest.gz 10 ${HASH}`, `MANIFEST other/deep/Manifest.gz 11 ${HASH}`);
  return lines.join('\n');
}

/** Every line parseManifest offers to pass over, deferred; the holders made for the ones put on one. */
function deferAll(lines: DeferredLines, manifest: string, text: string, holders: Map<string, LineHolder>, onHolder: (p: string) => boolean, places?: IndexPlaces): DeferredLine[] {
  const offered: DeferredLine[] = [];
  let id: number | undefined;
  parseManifest(text, manifest, (raw, line, start) => {
    const head = entryHead(raw, manifest);
    if (!head) return false;
    id ??= lines.manifest(manifest, text);
    if (head.tag !== 'MANIFEST' && onHolder(head.path)) {
      const holder = holders.get(head.path) ?? {};
      holders.set(head.path, holder);
      lines.hold(id, line, start, holder);
    } else if (head.tag === 'MANIFEST') {
      // By the folder's place where it has one, as the verification does for a folder it did not list.
      const folder = head.path.slice(0, head.path.lastIndexOf('/'));
      const at = places?.of(folder);
      if (at !== undefined) lines.addSubManifestAt(id, line, start, at);
      else lines.addSubManifest(id, line, start, folder);
    } else lines.addFile(id, line, start, head.path);
    offered.push({ raw, line, manifest });
    return true;
  });
  return offered;
}

const key = (l: DeferredLine): string => `${l.manifest}:${l.line}:${l.raw}`;

/** A base's folder index by place (TreeWalk.places), made of `folders`. */
function placesOf(folders: string[]): IndexPlaces {
  return { count: folders.length, of: (p) => (folders.includes(p) ? folders.indexOf(p) : undefined), path: (at) => folders[at] as string };
}

// The folders of MANIFEST lines kept by path (no folder index), or by place in the base's index.
describe.each([
  ['by path', undefined],
  ['by place', placesOf(['', 'cat-a', 'cat-a/sub', 'cat-a/other', 'cat-a/other/deep', 'cat-b', 'a', 'a/b'])],
])('deferred lines, sub-Manifest folders kept %s', (_how, places) => {
  it('give back every line as parsed, however they waited, past the first growth of their arrays (16k slots)', () => {
    const holders = new Map<string, LineHolder>();
    const lines = new DeferredLines((p) => holders.get(p), places);
    const a = manifestText(17000, true);
    const b = manifestText(900);
    const offered = [
      ...deferAll(lines, 'cat-a/Manifest', a, holders, (p) => p.includes('/pkg-1/') || p.includes('/pkg-2/'), places),
      ...deferAll(lines, 'cat-b/Manifest', b, holders, () => false),
    ];
    expect(offered.length).toBe(17000 + 2 + 900);
    expect(lines.fileLines()).toBe(17900);
    expect([...lines.manifestFolders()].sort()).toEqual(['cat-a/other/deep', 'cat-a/sub']);
    // Covered wherever the line waits: on a holder, or by file.
    expect(lines.coversFile('cat-a/pkg-1/file-1.ebuild')).toBe(true);
    expect(lines.coversFile('cat-a/pkg-3/file-3.ebuild')).toBe(true);
    expect(lines.coversFile('cat-a/pkg-3/file-4.ebuild')).toBe(false);
    expect(lines.holds(holders.get('cat-a/pkg-1/file-1.ebuild') as LineHolder)).toBe(true);

    const out: DeferredLine[] = [];
    // A file by itself (on a holder, then by file), then a whole folder's by an IGNORE of it.
    lines.takeAbout('cat-a/pkg-1/file-1.ebuild', out);
    lines.takeAbout('cat-b/pkg-3/file-10.ebuild', out);
    expect(out.map(key)).toEqual([offered[1], offered[17000 + 2 + 10]].map((l) => key(l as DeferredLine)));
    expect(lines.coversFile('cat-a/pkg-1/file-1.ebuild')).toBe(false);
    expect(lines.holds(holders.get('cat-a/pkg-1/file-1.ebuild') as LineHolder)).toBe(false);
    lines.takeInside('cat-a/pkg-2', out);
    // A sub-Manifest's line, by a disturbed path inside its folder.
    lines.takeAbout('cat-a/other/deep/pkg/x.ebuild', out);
    expect(lines.manifestFolders().next().value).toBe('cat-a/sub');
    // The rest, folder by folder.
    for (let f = 0; f < 7; f++) {
      lines.takeInside(`cat-a/pkg-${f}`, out);
      lines.takeInside(`cat-b/pkg-${f}`, out);
    }
    lines.takeAbout('cat-a/sub', out);
    expect(lines.fileLines()).toBe(0);
    expect([...lines.manifestFolders()]).toEqual([]);
    expect(out.map(key).sort()).toEqual(offered.map(key).sort());
    expect(new Set(out.map(key)).size).toBe(out.length);
  });

  it('takes a key out once, for good: a line added under it afterwards breaks the rule and is refused', () => {
    const lines = new DeferredLines(() => undefined, places);
    const text = `MANIFEST a/b/Manifest 1 ${HASH}\nDATA a/c 1 ${HASH}\nDATA a/b/d 1 ${HASH}`;
    const id = lines.manifest('Manifest', text);
    lines.addSubManifest(id, 1, 0, 'a/b');
    lines.addFile(id, 2, text.indexOf('DATA a/c'), 'a/c');
    const out: DeferredLine[] = [];
    // A disturbance inside a/b takes the sub-Manifest's line; one beside it, inside a, then finds a and the top swept.
    lines.takeAbout('a/b/d', out);
    expect(out.map((l) => l.line)).toEqual([1]);
    lines.takeAbout('a/c', out);
    expect(out.map((l) => l.line)).toEqual([1, 2]);
    expect(out.map((l) => l.raw)).toEqual(text.split('\n').slice(0, 2));
    expect(lines.fileLines()).toBe(0);
    expect(() => lines.addSubManifest(id, 1, 0, 'a/b')).toThrow(/after a disturbance concerned it/);
    expect(() => lines.addFile(id, 2, 0, 'a')).toThrow(/after a disturbance concerned it/);
    if (places) expect(() => lines.addSubManifestAt(id, 1, 0, places.of('a/b') as number)).toThrow(/a line added under a\/b, after a disturbance concerned it/);
  });

  it('counts each folder once, whichever way its lines were put under it', () => {
    const lines = new DeferredLines(() => undefined, places);
    const text = `MANIFEST a/b/Manifest 1 ${HASH}\nMANIFEST a/b/Manifest.gz 1 ${HASH}\nMANIFEST new/Manifest 1 ${HASH}`;
    const id = lines.manifest('Manifest', text);
    lines.addSubManifest(id, 1, 0, 'a/b');
    const at = places?.of('a/b');
    if (at !== undefined) lines.addSubManifestAt(id, 2, text.indexOf('MANIFEST a/b/Manifest.gz'), at);
    else lines.addSubManifest(id, 2, text.indexOf('MANIFEST a/b/Manifest.gz'), 'a/b');
    // A folder the index does not have (new since the base): by path either way.
    lines.addSubManifest(id, 3, text.indexOf('MANIFEST new'), 'new');
    expect([...lines.manifestFolders()].sort()).toEqual(['a/b', 'new']);
    const out: DeferredLine[] = [];
    lines.takeInside('a', out);
    expect(out.map((l) => l.line).sort()).toEqual([1, 2]);
    expect([...lines.manifestFolders()]).toEqual(['new']);
  });

});

describe('deferred lines', () => {
  it('wakes a line to the same entry a parse of it gives', () => {
    const holders = new Map<string, LineHolder>();
    const lines = new DeferredLines((p) => holders.get(p));
    const text = manifestText(40);
    const offered = deferAll(lines, 'x/Manifest', text, holders, () => true);
    const out: DeferredLine[] = [];
    lines.takeInside('x', out);
    const parsed = parseManifest(text, 'x/Manifest').files;
    const byLine = new Map(parsed.map((e) => [e.line, e]));
    expect(out.length).toBe(offered.length);
    for (const d of out) {
      const again = parseManifest(d.raw, d.manifest).files[0];
      expect(again?.path).toBe(byLine.get(d.line)?.path);
      expect(again?.raw).toBe(byLine.get(d.line)?.raw);
    }
  });
});
