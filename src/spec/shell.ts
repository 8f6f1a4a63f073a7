// Shell lines in specs (`shell: true`, or the script of a shell's -c anywhere in a command: `sh -c`,
// `env sh -c`, `timeout 30 bash -c`, `srun bash -c`, ...): every value substituted into one is
// written so that the shell reads it back as exactly that text, wherever it lands. A small lexer
// follows the script to each value's place -- bare words, '...', "...", $'...', $(...) and `...`
// nested in either, ${...}, $((...)), comments, here-document bodies -- and the value is quoted
// for that place, so a parameter holding `$(rm -rf ~)` or a path with a space stays data. What a
// script reads that the spec does not name -- workspace files given as words, environment variables
// as $NAME -- is found here too, so that it can enter the stage's cache key.

/** Where a value lands in a shell script. */
export type QuoteKind = 'bare' | 'single' | 'double' | 'param-double' | 'ansi' | 'comment' | 'arith' | 'heredoc' | 'heredoc-literal';

export interface QuoteContext {
  kind: QuoteKind;
  /** Here-document bodies: the delimiter word that ends the body. */
  delim?: string;
  /** How many `...` command substitutions enclose the place (each adds a layer of backslash processing). */
  backticks?: number;
}

export const BARE: QuoteContext = { kind: 'bare' };

/** A value that cannot be written where it lands (a word in $((...)), a here-document's end line). */
export class ShellValueError extends Error {}

interface PendingHeredoc {
  delim: string;
  literal: boolean;
  strip: boolean;
}

type Frame =
  | { t: 'cmd'; close: ')' | '`' | null; parens: number; wordStart: boolean; heredocs: PendingHeredoc[] }
  | { t: 'single' }
  | { t: 'double' }
  | { t: 'ansi' }
  | { t: 'param'; braces: number; inDouble: boolean }
  | { t: 'arith'; parens: number }
  | { t: 'comment' }
  | { t: 'heredoc'; doc: PendingHeredoc; line: string | null; queue: PendingHeredoc[] };

const HEREDOC_START = /^<<(-?)[ \t]*((?:'[^']*'|"(?:\\.|[^"\\])*"|\\.|[^\s;&|<>()'"\\])+)/;

/**
 * Follows a shell script text piece by piece (the literal parts of a template; a value between two
 * parts, once quoted, leaves the place unchanged) and says where the next piece lands.
 */
export class ShellLexer {
  private readonly stack: Frame[] = [cmdFrame(null)];

  feed(text: string): this {
    for (let i = 0; i < text.length; i++) i = this.step(text, i);
    return this;
  }

  context(): QuoteContext {
    const top = this.stack[this.stack.length - 1]!;
    const backticks = this.stack.filter((f) => f.t === 'cmd' && f.close === '`').length;
    const ctx: QuoteContext =
      top.t === 'cmd' ? { kind: 'bare' }
      : top.t === 'param' ? { kind: top.inDouble ? 'param-double' : 'bare' }
      : top.t === 'heredoc' ? { kind: top.doc.literal ? 'heredoc-literal' : 'heredoc', delim: top.doc.delim }
      : { kind: top.t };
    if (backticks) ctx.backticks = backticks;
    return ctx;
  }

  private push(f: Frame): void {
    this.stack.push(f);
  }

  private pop(): void {
    if (this.stack.length > 1) this.stack.pop();
  }

  /** Handles the character at i (and any it consumes with it); returns the index of the last one used. */
  private step(s: string, i: number): number {
    const f = this.stack[this.stack.length - 1]!;
    const c = s[i]!;
    switch (f.t) {
      case 'single':
        if (c === "'") this.pop();
        return i;
      case 'ansi':
        if (c === '\\') return i + 1;
        if (c === "'") this.pop();
        return i;
      case 'comment':
        if (c !== '\n') return i;
        this.pop();
        return this.step(s, i); // the newline ends the comment and may start a here-document
      case 'double':
        if (c === '\\') return i + 1;
        if (c === '"') {
          this.pop();
          return i;
        }
        return this.expansion(s, i, true) ?? i;
      case 'param':
        if (c === '\\') return i + 1;
        if (c === '}') {
          if (f.braces === 0) this.pop();
          else f.braces--;
          return i;
        }
        if (c === '{') f.braces++;
        else if (c === "'" && !f.inDouble) this.push({ t: 'single' });
        else if (c === '"') this.push({ t: 'double' });
        else return this.expansion(s, i, f.inDouble) ?? i;
        return i;
      case 'arith':
        if (c === '(') f.parens++;
        else if (c === ')') {
          if (f.parens > 0) f.parens--;
          else if (s[i + 1] === ')') {
            this.pop();
            return i + 1;
          }
        } else return this.expansion(s, i, false) ?? i;
        return i;
      case 'heredoc':
        if (c === '\n') {
          if (f.line !== null && (f.doc.strip ? f.line.replace(/^\t+/, '') : f.line) === f.doc.delim) {
            this.pop();
            const next = f.queue.shift();
            if (next) this.push({ t: 'heredoc', doc: next, line: '', queue: f.queue });
          } else f.line = '';
          return i;
        }
        if (!f.doc.literal && (c === '\\' || c === '$' || c === '`')) {
          if (c === '\\') {
            if (f.line !== null) f.line += s.slice(i, i + 2);
            return i + 1;
          }
          const j = this.expansion(s, i, false);
          if (j !== undefined) {
            f.line = null; // a line with an expansion in it is not the end line
            return j;
          }
        }
        if (f.line !== null) f.line += c;
        return i;
      case 'cmd':
        return this.command(f, s, i);
    }
  }

  /** `$(`, `$((`, `${`, `` ` `` and `$'` where they open something; undefined where c opens nothing. */
  private expansion(s: string, i: number, inDouble: boolean): number | undefined {
    const c = s[i];
    if (c === '`') {
      const top = this.stack[this.stack.length - 1]!;
      if (top.t === 'cmd' && top.close === '`') this.pop();
      else this.push(cmdFrame('`'));
      return i;
    }
    if (c !== '$') return undefined;
    const n = s[i + 1];
    if (n === '(' && s[i + 2] === '(') {
      this.push({ t: 'arith', parens: 0 });
      return i + 2;
    }
    if (n === '(') {
      this.push(cmdFrame(')'));
      return i + 1;
    }
    if (n === '{') {
      this.push({ t: 'param', braces: 0, inDouble });
      return i + 1;
    }
    if (n === "'" && !inDouble) {
      this.push({ t: 'ansi' });
      return i + 1;
    }
    return undefined;
  }

  private command(f: Extract<Frame, { t: 'cmd' }>, s: string, i: number): number {
    const c = s[i]!;
    const wordStart = f.wordStart;
    f.wordStart = /[\s;&|<>()]/.test(c);
    if (c === '\\') {
      f.wordStart = false;
      return i + 1;
    }
    if (c === "'") this.push({ t: 'single' });
    else if (c === '"') this.push({ t: 'double' });
    else if (c === '#' && wordStart) this.push({ t: 'comment' });
    else if (c === '`' && f.close === '`') this.pop();
    else if (c === '(') f.parens++;
    else if (c === ')') {
      if (f.parens > 0) f.parens--;
      else if (f.close === ')') this.pop();
    } else if (c === '<' && s[i + 1] === '<' && s[i + 2] !== '<') {
      const m = HEREDOC_START.exec(s.slice(i));
      if (m) {
        const word = m[2]!;
        f.heredocs.push({ delim: word.replace(/'([^']*)'|"((?:\\.|[^"\\])*)"|\\(.)/g, (_, a, b, e) => a ?? b ?? e), literal: /['"\\]/.test(word), strip: m[1] === '-' });
        f.wordStart = true;
        return i + m[0].length - 1;
      }
    } else if (c === '\n' && f.heredocs.length) {
      const [first, ...rest] = f.heredocs.splice(0);
      this.push({ t: 'heredoc', doc: first!, line: '', queue: rest });
    } else {
      const j = this.expansion(s, i, false);
      if (j !== undefined) {
        f.wordStart = false;
        return j;
      }
    }
    return i;
  }
}

function cmdFrame(close: ')' | '`' | null): Frame {
  return { t: 'cmd', close, parens: 0, wordStart: true, heredocs: [] };
}

/** Where a value written right after `text` (a script's start) lands. */
export function contextAfter(text: string): QuoteContext {
  return new ShellLexer().feed(text).context();
}

// Characters no shell expands or splits on in a bare word; '=' not first (zsh expands =cmd to its path).
const SAFE_WORD = /^[A-Za-z0-9_@%+:,./-][A-Za-z0-9_@%+=:,./-]*$/;

/**
 * `value` written so that the shell reads it back as exactly that text in context `ctx`. Throws a
 * ShellValueError where no writing can keep it data (a word in $((...)), a line that would end a
 * here-document).
 */
export function shellQuote(value: string, where: QuoteContext | QuoteKind): string {
  const ctx = typeof where === 'string' ? { kind: where } : where;
  let q: string;
  switch (ctx.kind) {
    case 'bare':
      q = SAFE_WORD.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
      break;
    case 'comment':
      // Inert in a comment; quoted anyway, and on one line, so that it stays data even if the
      // place were not a comment after all.
      q = shellQuote(value.replace(/[\r\n]/g, ' '), 'bare');
      break;
    case 'single':
      q = value.replace(/'/g, `'\\''`);
      break;
    case 'double':
      q = value.replace(/[\\"$`]/g, '\\$&');
      break;
    case 'param-double':
      // "${x:-V}": bash pairs single quotes there (and prints them), so a lone one breaks the line.
      if (value.includes("'")) throw new ShellValueError(`a value inside "\${...}" cannot hold a single quote (bash reads one there as opening a quotation): move it out of the \${...}`);
      q = value.replace(/[\\"$`]/g, '\\$&');
      break;
    case 'ansi':
      q = value.replace(/[\\']/g, '\\$&');
      break;
    case 'arith':
      if (!/^[+-]?[0-9]+$/.test(value)) throw new ShellValueError(`a value inside $((...)) must be a whole number, got ${JSON.stringify(value.slice(0, 60))}`);
      q = value;
      break;
    case 'heredoc':
    case 'heredoc-literal': {
      const end = value.split('\n').find((l) => l.replace(/^\t+/, '').startsWith(ctx.delim ?? '\0'));
      if (end !== undefined) throw new ShellValueError(`a value in a here-document (<<${ctx.delim}) has a line starting with '${ctx.delim}', which could end the document early: choose another delimiter`);
      q = ctx.kind === 'heredoc' ? value.replace(/[\\$`]/g, '\\$&') : value;
      break;
    }
  }
  for (let i = 0; i < (ctx.backticks ?? 0); i++) q = q.replace(/[\\`$]/g, '\\$&');
  return q;
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'ash', 'mksh']);

/**
 * Index of the argument that is a shell script, or -1: the line of `shell: true`, or the script of
 * a shell's -c wherever the shell stands in the command (`sh -c S`, `env sh -c S`, `timeout 30
 * bash -c S`, `srun bash -c S`, `conda run -n x bash -c S`, `singularity exec img sh -c S`, ...).
 */
export function shellScriptIndex(argv: string[], shell: boolean): number {
  if (shell) return 0;
  for (let s = 0; s < argv.length; s++) {
    // `su [user] -c S`, `runuser -c S`, `flock FILE -c S`: S goes to a shell too.
    if (['su', 'runuser', 'flock'].includes(argv[s]!.split('/').pop()!)) {
      const c = argv.findIndex((a, i) => i > s && (a === '-c' || a === '--command'));
      if (c > 0 && c < argv.length - 1) return c + 1;
    }
    if (!SHELLS.has(argv[s]!.split('/').pop()!)) continue;
    for (let i = s + 1; i < argv.length - 1; i++) {
      const a = argv[i]!;
      if (/^-[a-zA-Z]*c[a-zA-Z]*$/.test(a)) return i + 1;
      if (!a.startsWith('-') && !a.startsWith('+')) break; // a script file, not -c
      if (a === '-o' || a === '+o') i++;
    }
  }
  return -1;
}

const WORD_OR_OPERATOR = /((?:'[^']*'|"(?:\\.|[^"\\])*"|\\.|[^\s;|&<>()`'"\\])+)|([;|&<>()`]+)/g;

/**
 * The words of a shell script, roughly: split at blanks and operators, quotes removed ("a b" is
 * one word). The target of an output redirection (`> out.txt`, `2>> log`) is left out: it is what
 * the script writes, not code it runs.
 */
export function shellWords(script: string): string[] {
  const out: string[] = [];
  let writeTarget = false;
  for (const m of script.matchAll(WORD_OR_OPERATOR)) {
    if (m[2] !== undefined) {
      writeTarget = m[2].includes('>');
      continue;
    }
    const word = m[1]!.replace(/'([^']*)'|"((?:\\.|[^"\\])*)"|\\(.)/g, (_, sq: string | undefined, dq: string | undefined, esc: string | undefined) => sq ?? (dq !== undefined ? dq.replace(/\\([\\"$`])/g, '$1') : esc!));
    if (!writeTarget && word) out.push(word);
    writeTarget = false;
  }
  return out;
}

/** Variables the shell itself sets, and the machine's identity: not a stage's input. */
const NOT_INPUTS = new Set(['HOME', 'USER', 'LOGNAME', 'PWD', 'OLDPWD', 'SHELL', 'TERM', 'TMPDIR', 'PATH', 'IFS', 'PPID', 'RANDOM', 'LINENO', 'SECONDS', 'HOSTNAME', 'PIPELINE_STAGE', 'PIPELINE_SEED']);

/** Environment variables a script reads ($NAME, ${NAME}, ${NAME:-x}), less the shell's own. */
export function shellEnvNames(script: string): string[] {
  const names = new Set<string>();
  for (const m of script.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) if (!NOT_INPUTS.has(m[1]!)) names.add(m[1]!);
  return [...names].sort();
}
