// A small real pipeline: two module stages (one importing a helper file) and a command stage.
import { STAGE_API, Workspace } from './workspace.ts';

export const SCALE = `import { readFile, writeFile } from 'node:fs/promises';
import { defineStage } from '${STAGE_API}';
import { formatNumbers } from './lib/format.ts';
const OFFSET = 0;
export default defineStage({
  params: {
    type: 'object',
    properties: { factor: { type: 'number' }, tag: { type: 'string', default: 'x' } },
    required: ['factor'],
    additionalProperties: false,
  },
  inputs: ['numbers'],
  outputs: ['scaled'],
  async run(ctx) {
    const nums = (await readFile(ctx.inputs.numbers as string, 'utf8')).trim().split(/\\s+/).map(Number);
    ctx.log.info('tag', ctx.params.tag);
    await writeFile(ctx.outputs.scaled, formatNumbers(nums.map((n) => n * (ctx.params.factor as number) + OFFSET)));
  },
});
`;

export const FORMAT = `export function formatNumbers(xs: number[]): string {
  return xs.map((x) => x.toFixed(2)).join('\\n') + '\\n';
}
`;

export const SUM = `import { readFile, writeFile } from 'node:fs/promises';
import { defineStage } from '${STAGE_API}';
export default defineStage({
  params: { type: 'object', additionalProperties: false },
  inputs: ['values'],
  outputs: ['total'],
  async run(ctx) {
    const nums = (await readFile(ctx.inputs.values as string, 'utf8')).trim().split(/\\s+/).map(Number);
    await writeFile(ctx.outputs.total, String(nums.reduce((a, b) => a + b, 0)));
  },
});
`;

export const SPEC = `# yaml-language-server: $schema=../schemas/pipeline.schema.json
name: numbers
params:
  factor: 2
stages:
  scale:
    uses: stages/scale.ts
    inputs: { numbers: data/numbers.txt }
    params: { factor: "\${params.factor}", tag: a }
  sum:
    uses: stages/sum.ts
    inputs: { values: "\${stages.scale.outputs.scaled}" }
    outs: { total: results/total.txt }
  other:
    run: [sh, -c, 'wc -c < "$0" | tr -d " " > "$1"', data/other.txt, "\${outputs.count}"]
    deps: [data/other.txt]
    outs: { count: results/count.txt }
`;

export function numbersWorkspace(): Workspace {
  return new Workspace({
    'stages/scale.ts': SCALE,
    'stages/lib/format.ts': FORMAT,
    'stages/sum.ts': SUM,
    'pipeline.yaml': SPEC,
    'data/numbers.txt': '1 2 3\n',
    'data/other.txt': 'hello\n',
  });
}

/**
 * The RRTN pipeline at toy size (a small CNN, two epochs, a synthetic corpus of `clips` clips): the
 * training stage swept over `matrix` (YAML flow mapping), evaluated into results/report.
 */
export function tinyRrtnSpec(matrix: string, clips = 80): string {
  return `seed: 3
stages:
  corpus:
    uses: stages/synth-vocal-bursts.ts
    params: { clips: ${clips} }
  dataset:
    uses: stages/exvo.ts
    inputs: { corpus: "\${stages.corpus.outputs.corpus}" }
  features:
    uses: stages/logmel.ts
    inputs: { dataset: "\${stages.dataset.outputs.dataset}" }
  views:
    uses: stages/distort.ts
    inputs: { features: "\${stages.features.outputs.features}" }
  train:
    uses: stages/twin-train.ts
    matrix: ${matrix}
    inputs: { features: "\${stages.features.outputs.features}", policy: "\${stages.views.outputs.policy}" }
    params: { mode: "\${matrix.mode}", channels: [4, 8, 8, 8], projector: 8, epochs: 2, crop: 32, batch: 8 }
  evaluate:
    uses: stages/evaluate.ts
    inputs: { runs: "\${stages.train.outputs.result}", features: "\${stages.features.outputs.features}" }
    params: { resamples: 100 }
    outs: { report: results/report }
`;
}

/** A stage module with one output `o`: `head` after the imports, `body` inside run(ctx). */
export function outputStage(body: string, head = ''): string {
  return `import { writeFileSync } from 'node:fs';\nimport { defineStage } from 'rrtn-pipeline';\n${head}\nexport default defineStage({ params: {}, outputs: ['o'], async run(ctx) {\n${body}\n} });\n`;
}
