// A sample of the malformed-spec generator on every test run (the whole set: npm run fuzz:specs):
// one spec of each kind, each must end in a clear error. The judge itself is checked first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judge, runCases, summary } from './reliability/fuzz-specs.ts';
import { generateCases, KINDS } from './reliability/spec-cases.ts';

test('the fuzz judge tells a clear error from a stack trace, a hang and an acceptance', () => {
  assert.equal(judge(2, 'p.yaml:3:5: stages.a: unknown key\n1 problem in the spec\n', false), 'clear');
  assert.equal(judge(2, "pipeline: --set 'x': p.yaml declares no parameter 'x'\n", false), 'clear');
  assert.equal(judge(2, 'TypeError: x is undefined\n    at f (file.js:1:1)\n', false), 'stack');
  assert.equal(judge(70, 'pipeline: internal error: boom (full trace: /tmp/x)\n', false), 'stack');
  assert.equal(judge(0, '', false), 'accepted');
  assert.equal(judge(null, '', true), 'hang');
});

test(`one malformed spec of each of the ${KINDS.length} kinds: every one a clear error`, async () => {
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1000);
  const outcomes = await runCases(generateCases(seed, 1));
  const bad = outcomes.filter((o) => o.verdict !== 'clear').map((o) => `${o.c.kind} -> ${o.verdict}: ${JSON.stringify(o.c.spec.slice(0, 100))}\n${o.stderr.slice(0, 400)}`);
  assert.deepEqual(bad, [], `${summary(outcomes)} (FUZZ_SEED=${seed} reproduces it)`);
  assert.equal(outcomes.length, KINDS.length);
});
