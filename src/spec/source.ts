// The spec as parsed YAML that still knows where every value came from, so each problem can be
// reported at its line and column.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Document, LineCounter, Node } from 'yaml';
import { join } from 'node:path';
import { dottedPath, type Diagnostic } from '../diagnostics.ts';
import { CORRUPT, readSealed, writeSealed } from '../fsutil.ts';
import { hashBytes, jsonExact } from '../cache/hash.ts';

/** The yaml package, loaded on first use: an unchanged spec is read back from the memo without it. */
let yaml: typeof import('yaml') | undefined;
export function yamlLib(): typeof import('yaml') {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml;
}

function parseYaml(text: string): { doc: Document; lines: LineCounter } {
  const { LineCounter, parseDocument } = yamlLib();
  const lines = new LineCounter();
  // Duplicate keys are found by duplicateKeys() below: yaml's own check is quadratic in a mapping's
  // size (40,000 params took 95 s).
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  return { doc, lines };
}

/** Deepest nesting a spec may have: far beyond any real pipeline, well within every recursion. */
export const MAX_DEPTH = 64;

/** Each repeated key of every mapping (offset of the repeat), and whether nesting exceeds MAX_DEPTH. */
function shapeProblems(doc: Document): { duplicates: Array<{ key: string; pos: number }>; tooDeep?: number } {
  const { isMap, isSeq, isPair, isScalar } = yamlLib();
  const duplicates: Array<{ key: string; pos: number }> = [];
  let tooDeep: number | undefined;
  // Iterative: a spec nested thousands deep must not overflow the stack here either.
  const stack: Array<{ node: unknown; depth: number }> = [{ node: doc.contents, depth: 0 }];
  while (stack.length) {
    const { node, depth } = stack.pop()!;
    if (depth > MAX_DEPTH) {
      tooDeep ??= (node as Node).range?.[0] ?? 0;
      continue;
    }
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const p of node.items) {
        if (!isPair(p)) continue;
        const k = isScalar(p.key) ? String(p.key.value) : JSON.stringify(p.key);
        if (seen.has(k)) duplicates.push({ key: k, pos: (p.key as Node | null)?.range?.[0] ?? 0 });
        seen.add(k);
        stack.push({ node: p.value, depth: depth + 1 });
      }
    } else if (isSeq(node)) for (const item of node.items) stack.push({ node: item, depth: depth + 1 });
  }
  return { duplicates, tooDeep };
}

export type SpecPath = ReadonlyArray<string | number>;

export class SpecSource {
  private parsed: { doc: Document; lines: LineCounter } | undefined;

  private constructor(
    readonly file: string,
    private readonly text: string,
    readonly value: unknown,
    readonly syntaxErrors: Diagnostic[],
  ) {}

  /**
   * Reads a spec. With `cacheDir`, the parsed value of a text seen before is read back as JSON:
   * parsing YAML with source positions costs ~0.5 s for a 1,000-stage spec, and positions are only
   * needed to report a problem, so the document is then parsed lazily, on the first `locate`.
   */
  static async read(file: string, displayName = file, cacheDir?: string): Promise<SpecSource> {
    const text = await readFile(file, 'utf8');
    const memo = cacheDir ? join(cacheDir, 'specs', `${await hashBytes(text)}.json`) : undefined;
    const hit = memo ? await readSealed<{ value: unknown }>(memo) : undefined;
    if (hit && hit !== CORRUPT && 'value' in hit) return new SpecSource(displayName, text, hit.value, []);
    const src = SpecSource.parse(text, displayName);
    // Kept only where JSON holds the value exactly (a spec with .inf or .nan is parsed each time).
    if (memo && !src.syntaxErrors.length && jsonExact(src.value)) await writeSealed(memo, { value: src.value });
    return src;
  }

  static parse(text: string, file: string): SpecSource {
    const { doc, lines } = parseYaml(text);
    const at = (pos: number, message: string): Diagnostic => {
      const p = lines.linePos(pos);
      return { file, line: p.line, col: p.col, path: '', message };
    };
    const syntaxErrors = [...doc.errors, ...doc.warnings].map((e) => {
      const m = e.message.split('\n')[0] ?? e.message;
      return at(e.pos[0], /call stack/i.test(m) ? `the spec nests too deeply to read (a spec nests at most ${MAX_DEPTH} levels)` : m);
    });
    let value: unknown;
    if (!doc.errors.length) {
      const shape = shapeProblems(doc);
      for (const d of shape.duplicates) syntaxErrors.push(at(d.pos, `duplicate key '${d.key}': each key may appear once in a mapping`));
      if (shape.tooDeep !== undefined) syntaxErrors.push(at(shape.tooDeep, `the spec nests more than ${MAX_DEPTH} levels deep`));
      if (!syntaxErrors.length) {
        try {
          value = doc.toJS({ maxAliasCount: 1000 });
        } catch (e) {
          const m = e instanceof Error ? e.message : String(e);
          const alias = /Unresolved alias.*: (.*)$/.exec(m);
          const pos = alias ? text.indexOf(`*${alias[1]}`) : 0;
          syntaxErrors.push(
            at(Math.max(0, pos), alias ? `unresolved alias *${alias[1]}: define the anchor &${alias[1]} before the alias uses it` : /alias count/i.test(m) ? 'aliases expand to too many values (more than 1,000 alias uses): an alias bomb, or a spec to write out without aliases' : m.split('\n')[0]!),
          );
        }
      }
    }
    const src = new SpecSource(file, text, value, syntaxErrors);
    src.parsed = { doc, lines };
    return src;
  }

  /**
   * Position of the node at `path`, or of the deepest ancestor that exists (a missing key is
   * reported where its parent is). With `key`, the position of the mapping key itself.
   */
  locate(path: SpecPath, key = false): { line: number; col: number } {
    this.parsed ??= parseYaml(this.text);
    const { doc, lines } = this.parsed;
    const { isMap, isSeq, isPair, isScalar } = yamlLib();
    let node: Node | null = doc.contents as Node | null;
    let pos = 0;
    for (let i = 0; i < path.length && node; i++) {
      const seg = path[i]!;
      pos = node.range?.[0] ?? pos;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const last = i === path.length - 1;
        const keyNode = pair.key as Node;
        if (last && (key || !pair.value)) {
          pos = keyNode.range?.[0] ?? pos;
          node = null;
          break;
        }
        node = pair.value as Node | null;
        if (!node) pos = keyNode.range?.[0] ?? pos;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as Node | undefined;
        if (!item) break;
        node = item;
      } else break;
      if (node) pos = node.range?.[0] ?? pos;
    }
    const p = lines.linePos(pos);
    return { line: p.line, col: p.col };
  }

  /** Line `n` (1-based) of the spec's text, '' past its end. */
  lineText(n: number): string {
    return this.text.split('\n')[n - 1] ?? '';
  }

  diagnostic(path: SpecPath, message: string, key = false): Diagnostic {
    const { line, col } = this.locate(path, key);
    return { file: this.file, line, col, path: dottedPath(path), message };
  }
}
