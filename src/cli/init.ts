// `pipeline init [dir]`: a new project (see ../init.ts).
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
  const cd = dir === '.' ? '' : `cd ${dir} && `;
  process.stdout.write(`${written.map((f) => `  wrote ${f}`).join('\n')}\nNext: ${cd}pipeline run pipeline.yaml\n`);
  return 0;
}
