// `pipeline init [dir]`: a new project that runs as it is (a few seconds on a laptop): a spec that
// uses built-in RRTN stages by package name, one TypeScript stage of the user's own (importing the
// stage API as `rrtn-pipeline`) and one command stage (a shell script). Never overwrites a file.
import { existsSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { PACKAGE_VERSION } from './cache/fingerprint.ts';
import { UsageError } from './diagnostics.ts';
import { writeOutsideProblem } from './paths.ts';

const SPEC = `# yaml-language-server: $schema=./node_modules/rrtn-pipeline/schemas/pipeline.schema.json
# A new rrtn-pipeline project. Run it:        pipeline run pipeline.yaml
# Then edit a stage or a param and ask why:  pipeline status pipeline.yaml
# A small synthetic vocal-burst corpus (ExVo layout), checked by the ExVo loader, summarised by
# your own stage (stages/summary.ts), then written up by a command stage (scripts/report.sh).
name: my-experiment
seed: 1
params:
  clips: 60
stages:
  corpus:
    uses: rrtn-pipeline/stages/synth-vocal-bursts.ts
    params: { clips: "\${params.clips}" }
  dataset:
    uses: rrtn-pipeline/stages/exvo.ts
    inputs: { corpus: "\${stages.corpus.outputs.corpus}" }
  summary:
    uses: stages/summary.ts
    inputs: { dataset: "\${stages.dataset.outputs.dataset}" }
    params: { emotion: Amusement }
    metrics: [summary/metrics.json]
  report:
    run: [sh, scripts/report.sh, "\${stages.summary.outputs.summary}", "\${outputs.report}"]
    outs: { report: results/report.md }
`;

const STAGE = `// A stage of your own: counts the clips of each split and averages one emotion's intensity.
// Edit it and rerun: only this stage and the ones after it run again.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage } from 'rrtn-pipeline';

interface Params {
  emotion: string;
}

export default defineStage<Params>({
  description: 'Clips per split and the mean intensity of one emotion.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: { emotion: { type: 'string', default: 'Amusement' } },
  },
  inputs: ['dataset'],
  outputs: ['summary'],
  async run(ctx) {
    const manifest = JSON.parse(await readFile(join(ctx.inputs.dataset as string, 'clips.json'), 'utf8')) as {
      emotions: string[];
      clips: Array<{ split: string; labels: number[] | null }>;
    };
    const e = manifest.emotions.indexOf(ctx.params.emotion);
    if (e < 0) throw new Error(\`unknown emotion '\${ctx.params.emotion}' (the dataset has: \${manifest.emotions.join(', ')})\`);
    const perSplit: Record<string, number> = {};
    let sum = 0;
    let labelled = 0;
    for (const c of manifest.clips) {
      perSplit[c.split] = (perSplit[c.split] ?? 0) + 1;
      if (c.labels) {
        sum += c.labels[e]!;
        labelled++;
      }
    }
    await mkdir(ctx.outputs.summary!, { recursive: true });
    const metrics = { clips: manifest.clips.length, [\`mean_\${ctx.params.emotion}\`]: labelled ? sum / labelled : null };
    await writeFile(join(ctx.outputs.summary!, 'metrics.json'), JSON.stringify(metrics, null, 2));
    await writeFile(join(ctx.outputs.summary!, 'splits.json'), JSON.stringify(perSplit, null, 2));
    ctx.log.info(\`\${manifest.clips.length} clips\`);
  },
});
`;

const SCRIPT = `#!/bin/sh
# A command stage: any program can be one. $1 is the summary folder, $2 the report to write.
set -eu
{
  echo "# Report"
  echo
  echo "Metrics:"
  echo
  echo '\`\`\`json'
  cat "$1/metrics.json"
  echo
  echo '\`\`\`'
} > "$2"
`;

const PACKAGE = (name: string) => `${JSON.stringify({ name, private: true, type: 'module', devDependencies: { 'rrtn-pipeline': `^${PACKAGE_VERSION}` } }, null, 2)}\n`;

const TSCONFIG = `${JSON.stringify(
  { compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, allowImportingTsExtensions: true, skipLibCheck: true }, include: ['stages'] },
  null,
  2,
)}\n`;

const GITIGNORE = 'cache/\nresults/\nnode_modules/\n';

/** Writes the project into `dir` (created if needed); returns the files written, workspace-relative. */
export function initProject(dir: string): string[] {
  const root = resolve(dir);
  const files: Record<string, string> = {
    'pipeline.yaml': SPEC,
    'stages/summary.ts': STAGE,
    'scripts/report.sh': SCRIPT,
    '.gitignore': GITIGNORE,
    'tsconfig.json': TSCONFIG,
  };
  if (!existsSync(join(root, 'package.json'))) files['package.json'] = PACKAGE(root.split('/').pop()!.toLowerCase().replace(/[^a-z0-9-]+/g, '-') || 'experiment');
  const present = (rel: string) => !!lstatSync(join(root, rel), { throwIfNoEntry: false }); // a dangling link too
  const clash = Object.keys(files).filter((f) => f !== '.gitignore' && f !== 'tsconfig.json' && present(f));
  if (clash.length) throw new UsageError(`${relative(process.cwd(), root) || '.'} already has ${clash.join(', ')}: pipeline init writes a new project and never replaces files (choose an empty folder)`);
  // Checked for every file before any is written: a linked folder (stages/ -> elsewhere) would
  // carry the write out of the project. (A project folder still to be made holds no link.)
  const outside = existsSync(root) ? Object.keys(files).map((rel) => writeOutsideProblem(root, join(root, rel))).find(Boolean) : undefined;
  if (outside) throw new UsageError(`pipeline init: ${outside}; nothing was written`);
  const written: string[] = [];
  for (const [rel, text] of Object.entries(files)) {
    const abs = join(root, rel);
    if (present(rel)) continue;
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, text, { flag: 'wx', mode: rel.endsWith('.sh') ? 0o755 : 0o644 });
    written.push(rel);
  }
  return written;
}
