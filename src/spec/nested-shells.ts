// Values that would be read as code by a second shell. A value substituted into a shell line is
// quoted for the shell that reads the line (shell.ts); but a line may hand text on to another
// shell, which parses it again: the script of `bash -c '...'` (directly, or through timeout,
// xargs, env, nice, srun, sudo, ...), `su -c`, `flock -c`, `eval`, the command `ssh` sends, what
// `watch` runs; at any depth, in `$(...)` and backticks too; and anything in a script that runs a
// shell reading its commands from standard input (`| sh`, `bash <<EOF`, `sh <<< ...`). A value there is quoted for the outer
// shell only, so `--set 'msg=$(touch p)'` would run in the inner one. Such a place is refused,
// naming the reference, with the way to pass the value instead: an environment variable, which no
// shell parses as code. The same holds for an argument list whose program hands an argument to a
// shell (`[ssh, host, 'echo ${params.x}']`, `[su, -c, ...]` past its own script).
//
// The scan is deliberately conservative: it needs no shell grammar beyond words, quotes, command
// separators and substitutions, and when unsure that a word is only data, it treats it as code.
import { exprText, parsePieces, type Expr } from './references.ts';

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'ash', 'mksh', 'busybox']);
/** Programs that run a `-c`/`--command` argument through a shell. */
const COMMAND_FLAG = new Set(['su', 'runuser', 'flock']);
/** Words after which `eval` is at a command's start. */
const COMMAND_START = new Set(['command', 'builtin', 'exec', 'if', 'then', 'do', 'else', 'elif', 'while', 'until', '!', '{', 'time']);
/** ssh options that take a value. */
const SSH_VALUE = new Set(['-b', '-c', '-D', '-E', '-e', '-F', '-I', '-i', '-J', '-L', '-l', '-m', '-O', '-o', '-p', '-Q', '-R', '-S', '-W', '-w', '-B']);

const base = (w: string): string => w.split('/').pop() ?? w;

/** Index of the parenthesis closing the one at `open` (quotes skipped), or the text's end. */
function closeParen(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') i++;
    else if (c === "'") i = s.indexOf("'", i + 1) < 0 ? s.length : s.indexOf("'", i + 1);
    else if (c === '"') {
      for (i++; i < s.length && s[i] !== '"'; i++) if (s[i] === '\\') i++;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return s.length;
}

/** Index of the backtick closing the one at `open`, or the text's end. */
function closeTick(s: string, open: number): number {
  for (let i = open + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '`') return i;
  }
  return s.length;
}

/**
 * The simple commands of a script as lists of words (quotes removed), those inside `$(...)` and
 * backticks as commands of their own. Redirection targets are left out (data, not code).
 */
export function simpleCommands(s: string): string[][] {
  const cmds: string[][] = [];
  let cur: string[] = [];
  let word: string | null = null;
  let dropNext = false;
  const endWord = () => {
    if (word !== null && !dropNext) cur.push(word);
    if (word !== null) dropNext = false;
    word = null;
  };
  const endCmd = () => {
    endWord();
    if (cur.length) cmds.push(cur);
    cur = [];
  };
  const substitution = (from: number, to: number, inner: string) => {
    cmds.push(...simpleCommands(inner));
    word = (word ?? '') + s.slice(from, to + 1);
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') word = (word ?? '') + (s[++i] ?? '');
    else if (c === "'") {
      const j = s.indexOf("'", i + 1) < 0 ? s.length : s.indexOf("'", i + 1);
      word = (word ?? '') + s.slice(i + 1, j);
      i = j;
    } else if (c === '"') {
      word ??= '';
      for (i++; i < s.length && s[i] !== '"'; i++) {
        if (s[i] === '\\' && '\\"$`\n'.includes(s[i + 1] ?? '')) word += s[++i];
        else if (s.startsWith('$(', i)) {
          const j = closeParen(s, i + 1);
          substitution(i, j, s.slice(i + 2, j));
          i = j;
        } else if (s[i] === '`') {
          const j = closeTick(s, i);
          substitution(i, j, s.slice(i + 1, j));
          i = j;
        } else word += s[i];
      }
    } else if (c === '$' && s[i + 1] === '(') {
      const j = closeParen(s, i + 1);
      if (s[i + 2] === '(') word = (word ?? '') + s.slice(i, j + 1); // $((arithmetic))
      else substitution(i, j, s.slice(i + 2, j));
      i = j;
    } else if (c === '`') {
      const j = closeTick(s, i);
      substitution(i, j, s.slice(i + 1, j));
      i = j;
    } else if (c === '#' && word === null) {
      while (i < s.length && s[i] !== '\n') i++;
      endCmd();
    } else if (c === '\n') endCmd();
    else if (c === ' ' || c === '\t') endWord();
    else if (';&|()'.includes(c)) endCmd();
    else if (c === '<' || c === '>') {
      endWord();
      while ('<>&|'.includes(s[i + 1] ?? '') && s[i + 1]) i++;
      dropNext = true;
    } else word = (word ?? '') + c;
  }
  endCmd();
  return cmds;
}

/** Indices of the words of one command that another shell reads as code. */
export function codeWords(cmd: string[]): number[] {
  const out: number[] = [];
  for (let s = 0; s < cmd.length; s++) {
    const b = base(cmd[s]!);
    if (SHELLS.has(b)) {
      let i = s + 1;
      let dashC = false;
      if (b === 'busybox' && cmd[i] && SHELLS.has(cmd[i]!)) i++;
      for (; i < cmd.length; i++) {
        const a = cmd[i]!;
        if (a === '-o' || a === '+o') i++;
        else if (/^[-+][A-Za-z]+$/.test(a)) dashC ||= a[0] === '-' && a.includes('c');
        else if (a === '--') {
          i++;
          break;
        } else if (!a.startsWith('--')) break;
      }
      if (dashC && i < cmd.length) out.push(i);
    } else if (COMMAND_FLAG.has(b)) {
      for (let i = s + 1; i < cmd.length; i++) {
        if (cmd[i] === '-c' || cmd[i] === '--command') {
          if (i + 1 < cmd.length) out.push(i + 1);
          break;
        }
        if (cmd[i]!.startsWith('--command=') || /^-c./.test(cmd[i]!)) {
          out.push(i);
          break;
        }
      }
    } else if (b === 'eval' && (s === 0 || COMMAND_START.has(cmd[s - 1]!) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(cmd[s - 1]!))) {
      for (let i = s + 1; i < cmd.length; i++) out.push(i);
    } else if (b === 'ssh') {
      let i = s + 1;
      for (; i < cmd.length && cmd[i]!.startsWith('-'); i++) if (SSH_VALUE.has(cmd[i]!)) i++;
      for (let j = i + 1; j < cmd.length; j++) out.push(j);
    } else if (b === 'watch') {
      let i = s + 1;
      let exec = false;
      for (; i < cmd.length && cmd[i]!.startsWith('-'); i++) {
        exec ||= cmd[i] === '-x' || cmd[i] === '--exec';
        if (['-n', '--interval', '-q', '--equexit'].includes(cmd[i]!)) i++;
      }
      if (!exec) for (let j = i; j < cmd.length; j++) out.push(j);
    }
  }
  return out;
}

/** Words of a script that another shell reads as code (its nested scripts), at any depth. */
export function nestedCode(script: string): string[] {
  return simpleCommands(script).flatMap((cmd) => codeWords(cmd).map((i) => cmd[i]!));
}

/**
 * True when a command runs a shell that reads its commands from standard input (`sh`, `bash -s`,
 * `env sh`: no -c and no script file), which a pipe, a here-document or a here-string in the same
 * script can feed: any text of that script may then reach it as code.
 */
export function readsStdinScript(cmd: string[]): boolean {
  for (let s = 0; s < cmd.length; s++) {
    const b = base(cmd[s]!);
    // Anywhere in the command: a wrapper's option value (`sudo -u nobody sh`) cannot be told from a
    // command by words alone, so `echo sh` is refused too (conservative, as the rest of the scan).
    if (!SHELLS.has(b) || (b === 'busybox' && !SHELLS.has(cmd[s + 1] ?? ''))) continue;
    let i = b === 'busybox' ? s + 2 : s + 1;
    let stdin = false;
    for (; i < cmd.length; i++) {
      const a = cmd[i]!;
      if (a === '-o' || a === '+o') i++;
      else if (/^[-+][A-Za-z]+$/.test(a)) {
        if (a[0] === '-' && a.includes('c')) return false;
        stdin ||= a[0] === '-' && a.includes('s');
      } else if (a === '--') {
        i++;
        break;
      } else if (!a.startsWith('--')) break;
    }
    if (stdin || i >= cmd.length) return true;
  }
  return false;
}

export interface NestedValue {
  /** Index of the argument the reference is written in. */
  arg: number;
  /** The reference as written (`${params.msg}`). */
  ref: string;
}

/** What a reference is replaced by while scanning: a word character run no shell splits or expands. */
const mark = (n: number): string => `PIPELINEVALUE${n}X`;

/**
 * References to values (params, env, matrix: what a user or a `--set` can make anything) that land
 * where a shell other than the one that reads their argument would parse them: inside a nested
 * script of the shell line at `script` (-1: none), or in an argument the command's program hands
 * to a shell. Output paths are the engine's own and left alone.
 */
export function nestedValues(argv: string[], script: number): NestedValue[] {
  const refs: Array<{ arg: number; expr: Expr }> = [];
  const probes = argv.map((a, arg) =>
    parsePieces(a)
      .map((p) => {
        if (typeof p === 'string') return p;
        if (p.kind !== 'params' && p.kind !== 'env' && p.kind !== 'matrix') return 'PIPELINEPATH';
        refs.push({ arg, expr: p });
        return mark(refs.length - 1);
      })
      .join(''),
  );
  if (!refs.length) return [];
  const code: Array<{ arg: number; text: string }> = [];
  for (const i of codeWords(probes)) if (i !== script) code.push({ arg: i, text: probes[i]! });
  if (script >= 0) {
    for (const text of nestedCode(probes[script]!)) code.push({ arg: script, text });
    // A shell reading commands from standard input: whatever the script pipes or feeds it is code.
    if (simpleCommands(probes[script]!).some(readsStdinScript)) code.push({ arg: script, text: probes[script]! });
  }
  const out: NestedValue[] = [];
  refs.forEach((r, n) => {
    if (code.some((c) => c.arg === r.arg && c.text.includes(mark(n)))) out.push({ arg: r.arg, ref: exprText(r.expr) });
  });
  return out;
}
