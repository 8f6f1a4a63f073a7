// A trivial stage for the engine benchmark: digests its inputs' sizes into a small output, so the
// measured time is the engine's bookkeeping, not the stage's work.
import { stat, writeFile } from 'node:fs/promises';
import { defineStage } from '../src/stage-api.ts';

export default defineStage({
  params: { type: 'object', properties: { layer: { type: 'integer' }, index: { type: 'integer' } }, required: ['layer', 'index'] },
  inputs: ['from'],
  outputs: ['out'],
  async run(ctx) {
    const from = ([] as string[]).concat(ctx.inputs.from ?? []);
    let size = 0;
    for (const f of from) size += (await stat(f)).size;
    await writeFile(ctx.outputs.out, `${ctx.params.layer}:${ctx.params.index}:${size}\n`);
  },
});
