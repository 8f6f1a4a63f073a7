// Built-in stage: byte and line counts of the files it is given, as JSON. A small, real stage that
// the demonstration pipeline runs until the RRTN stages land.
import { readFile, writeFile } from 'node:fs/promises';
import { defineStage } from '../src/stage-api.ts';

export default defineStage({
  description: 'Byte and line counts of files, as JSON.',
  params: { type: 'object', properties: { label: { type: 'string', default: 'files' } }, additionalProperties: false },
  inputs: ['files'],
  outputs: ['stats'],
  async run(ctx) {
    const files = ([] as string[]).concat(ctx.inputs.files ?? []);
    const rows = [];
    for (const [i, f] of files.entries()) {
      const text = await readFile(f, 'utf8');
      rows.push({ file: f.slice(ctx.workspace.length + 1), bytes: Buffer.byteLength(text), lines: text.split('\n').length - 1 });
      ctx.progress((i + 1) / files.length, f);
    }
    await writeFile(ctx.outputs.stats, `${JSON.stringify({ label: ctx.params.label, files: rows }, null, 2)}\n`);
  },
});
