// `${...}` expressions in spec values: params, env, matrix, and stage outputs.
//   ${params.a.b}                pipeline parameter (keeps its type when it is the whole value)
//   ${env.NAME} ${env.NAME:-x}   environment variable, with an optional default
//   ${matrix.k}                  this variant's matrix value
//   ${stages.<id>.outputs.<o>}   another stage's output (inputs, run and env only)
//   ${outputs.<o>}               this command stage's own output path (run and env only)
// `$${` escapes a literal `${`.

export type Expr =
  | { kind: 'params'; path: string[] }
  | { kind: 'env'; name: string; fallback?: string }
  | { kind: 'matrix'; name: string }
  | { kind: 'stage'; stage: string; output: string }
  | { kind: 'own'; output: string }
  | { kind: 'bad'; text: string; why: string };

export type Piece = string | Expr;

const EXPR = /\$(\$?)\{([^}]*)\}/g;
const STAGE_REF = /^stages\.([A-Za-z_][\w-]*(?:\[[^\]]*\])?)\.outputs\.([\w-]+)$/;

/** Literal text, or a `bad` piece where it holds a `${` that never closes. */
function literal(text: string): Piece {
  const open = /(^|[^$])\$\{/.exec(text);
  if (!open) return text;
  const from = open.index + open[1]!.length;
  return bad(text.slice(from + 2, from + 42), 'unterminated reference: it needs a closing } (write $${ for a literal ${)');
}

export function parsePieces(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  for (const m of text.matchAll(EXPR)) {
    const start = m.index ?? 0;
    if (start > last) out.push(literal(text.slice(last, start)));
    last = start + m[0].length;
    if (m[1]) {
      out.push(`\${${m[2]}}`); // escaped
      continue;
    }
    out.push(parseExpr((m[2] ?? '').trim()));
  }
  if (last < text.length) out.push(literal(text.slice(last)));
  return mergeText(out);
}

function parseExpr(body: string): Expr {
  const head = body.split('.')[0];
  const rest = body.slice((head?.length ?? 0) + 1);
  switch (head) {
    case 'params':
      return rest ? { kind: 'params', path: rest.split('.') } : bad(body, 'name a parameter: ${params.name}');
    case 'env': {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s.exec(rest);
      return m ? { kind: 'env', name: m[1]!, fallback: m[2] } : bad(body, 'expected ${env.NAME} or ${env.NAME:-default}');
    }
    case 'matrix':
      return rest ? { kind: 'matrix', name: rest } : bad(body, 'name a matrix key: ${matrix.name}');
    case 'stages': {
      const m = STAGE_REF.exec(body);
      return m ? { kind: 'stage', stage: m[1]!, output: m[2]! } : bad(body, 'expected ${stages.<id>.outputs.<name>}');
    }
    case 'outputs':
      return /^[\w-]+$/.test(rest) ? { kind: 'own', output: rest } : bad(body, 'expected ${outputs.<name>}');
    default:
      return bad(body, 'a reference starts with params., env., matrix., stages. or outputs.');
  }
}

function bad(text: string, why: string): Expr {
  return { kind: 'bad', text, why };
}

function mergeText(pieces: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    const prev = out[out.length - 1];
    if (typeof p === 'string' && typeof prev === 'string') out[out.length - 1] = prev + p;
    else out.push(p);
  }
  return out;
}

export function exprText(e: Expr): string {
  switch (e.kind) {
    case 'params':
      return `\${params.${e.path.join('.')}}`;
    case 'env':
      return `\${env.${e.name}${e.fallback !== undefined ? `:-${e.fallback}` : ''}}`;
    case 'matrix':
      return `\${matrix.${e.name}}`;
    case 'stage':
      return `\${stages.${e.stage}.outputs.${e.output}}`;
    case 'own':
      return `\${outputs.${e.output}}`;
    case 'bad':
      return `\${${e.text}}`;
  }
}
