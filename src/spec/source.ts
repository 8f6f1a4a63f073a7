// The spec as parsed YAML that still knows where every value came from, so each problem can be
// reported at its line and column.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Document, LineCounter, Node } from 'yaml';
import { join } from 'node:path';
import { dottedPath, type Diagnostic } from '../diagnostics.ts';
import { readJsonIfExists, writeFileAtomic } from '../fsutil.ts';
import { hashBytes } from '../hash.ts';

/** The yaml package, loaded on first use: an unchanged spec is read back from the memo without it. */
let yaml: typeof import('yaml') | undefined;
export function yamlLib(): typeof import('yaml') {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml;
}

function parseYaml(text: string): { doc: Document; lines: LineCounter } {
  const { LineCounter, parseDocument } = yamlLib();
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  return { doc, lines };
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
    const hit = memo ? await readJsonIfExists<{ value: unknown }>(memo) : undefined;
    if (hit) return new SpecSource(displayName, text, hit.value, []);
    const src = SpecSource.parse(text, displayName);
    if (memo && !src.syntaxErrors.length) await writeFileAtomic(memo, JSON.stringify({ value: src.value }));
    return src;
  }

  static parse(text: string, file: string): SpecSource {
    const { doc, lines } = parseYaml(text);
    const syntaxErrors = [...doc.errors, ...doc.warnings].map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return { file, line: pos.line, col: pos.col, path: '', message: e.message.split('\n')[0] ?? e.message };
    });
    const value = doc.errors.length ? undefined : doc.toJS({ maxAliasCount: 1000 });
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

  diagnostic(path: SpecPath, message: string, key = false): Diagnostic {
    const { line, col } = this.locate(path, key);
    return { file: this.file, line, col, path: dottedPath(path), message };
  }
}
