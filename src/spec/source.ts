// The spec as parsed YAML that still knows where every value came from, so each problem can be
// reported at its line and column.
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Document, type Node } from 'yaml';
import { dottedPath, type Diagnostic } from '../diagnostics.ts';

export type SpecPath = ReadonlyArray<string | number>;

export class SpecSource {
  private constructor(
    readonly file: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly value: unknown,
    readonly syntaxErrors: Diagnostic[],
  ) {}

  static async read(file: string, displayName = file): Promise<SpecSource> {
    return SpecSource.parse(await readFile(file, 'utf8'), displayName);
  }

  static parse(text: string, file: string): SpecSource {
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const syntaxErrors = [...doc.errors, ...doc.warnings].map((e) => {
      const pos = lines.linePos(e.pos[0]);
      return { file, line: pos.line, col: pos.col, path: '', message: e.message.split('\n')[0] ?? e.message };
    });
    const value = doc.errors.length ? undefined : doc.toJS({ maxAliasCount: 1000 });
    return new SpecSource(file, doc, lines, value, syntaxErrors);
  }

  /**
   * Position of the node at `path`, or of the deepest ancestor that exists (a missing key is
   * reported where its parent is). With `key`, the position of the mapping key itself.
   */
  locate(path: SpecPath, key = false): { line: number; col: number } {
    let node: Node | null = this.doc.contents as Node | null;
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
    const p = this.lines.linePos(pos);
    return { line: p.line, col: p.col };
  }

  diagnostic(path: SpecPath, message: string, key = false): Diagnostic {
    const { line, col } = this.locate(path, key);
    return { file: this.file, line, col, path: dottedPath(path), message };
  }
}
