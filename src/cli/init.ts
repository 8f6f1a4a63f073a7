// `pipeline init [dir]`: a new project (see ../init.ts).
import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UsageError } from '../diagnostics.ts';
import { initProject } from '../init.ts';
import { parse } from './args.ts';
import { HELP, help } from './help.ts';

export function cmdInit(argv: string[]): number {
  const { values, positionals } = parse('init', argv, {});
  if (values.help) return help('init');
  if (positionals.length > 1) throw new UsageError(`init takes one folder, got ${positionals.length}\n\n${HELP.init}`);
  const dir = positionals[0] ?? '.';
  const written = initProject(dir);
  const cd = dir === '.' ? '' : `cd ${shellWord(dir)} && `;
  process.stdout.write(`${written.map((f) => `  wrote ${f}`).join('\n')}\nNext: ${cd}${commandName()} run pipeline.yaml\n`);
  return 0;
}

/** A folder name as a shell reads it back: quoted when it holds anything but plain characters. */
function shellWord(s: string): string {
  return /^[\w./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * How the user types this tool: `pipeline` when that name on PATH is this very program (a global
 * install, a linked checkout), else `npx pipeline` (a project's local install, where `pipeline`
 * alone is "command not found").
 */
function commandName(): string {
  const self = process.argv[1] && realOrUndefined(process.argv[1]);
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, 'pipeline');
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    return self && realOrUndefined(candidate) === self ? 'pipeline' : 'npx pipeline';
  }
  return 'npx pipeline';
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}
