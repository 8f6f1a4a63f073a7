// Shell lines in specs (`shell: true`, or the script of `sh -c SCRIPT`): every value substituted
// into one is quoted as one word for the place it lands (bare, inside '...', inside "..."), so a
// parameter holding `$(rm -rf ~)` or a path with a space stays data. And what a script reads that
// the spec does not name -- workspace files given as words, environment variables as $NAME -- is
// found here, so that it can enter the stage's cache key.

export type QuoteContext = 'bare' | 'single' | 'double';

/** The quoting context at the end of `text`, starting from `state`. */
export function quoteStateAfter(text: string, state: QuoteContext = 'bare'): QuoteContext {
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (state === 'single') {
      if (c === "'") state = 'bare';
    } else if (c === '\\') i++;
    else if (state === 'double') {
      if (c === '"') state = 'bare';
    } else if (c === "'") state = 'single';
    else if (c === '"') state = 'double';
  }
  return state;
}

/** `value` written so that the shell reads it back as exactly that text, in context `ctx`. */
export function shellQuote(value: string, ctx: QuoteContext): string {
  switch (ctx) {
    case 'single':
      return value.replace(/'/g, `'\\''`);
    case 'double':
      return value.replace(/[\\"$`]/g, '\\$&');
    case 'bare':
      return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
  }
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'ash', 'mksh']);

/** Index of the argument that is a shell script (`sh -c SCRIPT`, or the line of shell: true), or -1. */
export function shellScriptIndex(argv: string[], shell: boolean): number {
  if (shell) return 0;
  const prog = (argv[0] ?? '').split('/').pop()!;
  if (!SHELLS.has(prog)) return -1;
  for (let i = 1; i < argv.length - 1; i++) {
    const a = argv[i]!;
    if (/^-[a-zA-Z]*c[a-zA-Z]*$/.test(a)) return i + 1;
    if (!a.startsWith('-') && !a.startsWith('+')) return -1; // a script file, not -c
    if (a === '-o' || a === '+o') i++;
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
