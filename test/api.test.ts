/**
 * The public API, as users see it: the built declaration files. Every type
 * an exported declaration refers to (directly or through other types) must
 * itself be exported from the same entry point, so users can name what they
 * are handed; and the main entry point exports the facade, not internals.
 */
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { ROOT } from './helpers.js';

const DIST = path.join(ROOT, 'dist');

/** Project types reachable from the entry's exports that the entry does not export. */
function unnamedTypes(entry: string): { exported: string[]; missing: string[] } {
  const program = ts.createProgram([entry], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (!source) throw new Error(`cannot read ${entry}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (!moduleSymbol) throw new Error(`${entry} is not a module`);
  const resolve = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exports = checker.getExportsOfModule(moduleSymbol);
  const exported = new Set(exports.map(resolve));
  const ours = (d: ts.Declaration): boolean => d.getSourceFile().fileName.startsWith(DIST);
  const missing = new Set<string>();
  const visited = new Set<ts.Symbol>();

  const visitSymbol = (sym: ts.Symbol): void => {
    const s = resolve(sym);
    if (visited.has(s)) return;
    visited.add(s);
    for (const d of s.declarations ?? []) {
      if (!ours(d)) continue;
      // A parameter of a generic, a property or a member is not a named type of its own.
      if (ts.isTypeParameterDeclaration(d)) continue;
      const named = ts.isInterfaceDeclaration(d) || ts.isTypeAliasDeclaration(d) || ts.isClassDeclaration(d) || ts.isEnumDeclaration(d);
      if (named && !exported.has(s)) missing.add(`${s.getName()} (${path.relative(DIST, d.getSourceFile().fileName)})`);
      visitNode(d);
    }
  };
  const visitNode = (node: ts.Node): void => {
    if (ts.isTypeReferenceNode(node) || ts.isExpressionWithTypeArguments(node)) {
      const name = ts.isTypeReferenceNode(node) ? node.typeName : node.expression;
      const sym = checker.getSymbolAtLocation(name);
      if (sym) visitSymbol(sym);
    } else if (ts.isTypeQueryNode(node)) {
      const sym = checker.getSymbolAtLocation(node.exprName);
      if (sym) visitSymbol(sym);
    }
    // Private members are not part of the API.
    if ((ts.isPropertyDeclaration(node) || ts.isMethodDeclaration(node)) && node.modifiers?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword)) return;
    ts.forEachChild(node, visitNode);
  };
  for (const e of exports) visitSymbol(e);
  return { exported: exports.map((e) => e.getName()).sort(), missing: [...missing].sort() };
}

describe('public API', () => {
  for (const entry of ['index.d.ts', 'storage.d.ts']) {
    it(`${entry} names every type it hands out`, () => {
      expect(unnamedTypes(path.join(DIST, entry)).missing).toEqual([]);
    });
  }

  it('the main entry is the facade: no storage internals, and all four sources or none', () => {
    const { exported } = unnamedTypes(path.join(DIST, 'index.d.ts'));
    for (const internal of ['RcuStorage', 'QuarantineStorage', 'InPlaceStorage', 'StoreLayout', 'LocalSource', 'RsyncSource', 'GitSource', 'TarballSource']) {
      expect(exported).not.toContain(internal);
    }
    for (const facade of ['Repos', 'Repository', 'ReposnapError', 'StampedCache', 'modify']) expect(exported).toContain(facade);
    const storage = unnamedTypes(path.join(DIST, 'storage.d.ts')).exported;
    for (const s of ['RcuStorage', 'QuarantineStorage', 'InPlaceStorage', 'LocalSource', 'RsyncSource', 'GitSource', 'TarballSource', 'createSource']) {
      expect(storage).toContain(s);
    }
  });
});
