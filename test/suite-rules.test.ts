// Rules the test files themselves keep, checked on their source: messages on every assert.ok, and
// equivalent-mutants.tsv readable as `npm run mutate` reads it.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const TEST_DIR = new URL('.', import.meta.url).pathname;

/** Every .ts file under test/, relative to it. */
function testSources(dir = TEST_DIR, rel = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : testSources(join(dir, e.name), join(rel, e.name));
    return e.name.endsWith('.ts') ? [join(rel, e.name)] : [];
  });
}

test('every assert.ok and assert() in the tests carries its own message', () => {
  // Without one, a failing assert.ok makes node read the test's source back to quote the
  // expression; under tsx's loader hooks that took over a minute on a large test file
  // (nodejs/node#52962), so one failure stalled the file (and every mutant it would kill).
  const bare: string[] = [];
  for (const file of testSources()) {
    const sf = ts.createSourceFile(file, readFileSync(join(TEST_DIR, file), 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isCallExpression(node) && ['assert.ok', 'assert'].includes(node.expression.getText(sf)) && node.arguments.length < 2) {
        bare.push(`test/${file}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  assert.ok(testSources().length > 40, 'the test files were found');
  assert.deepEqual(bare, []);
});

test('every line of equivalent-mutants.tsv names a mutant and says why it cannot be killed', async () => {
  const { readExplained } = await import('./reliability/mutate.ts');
  const explained = readExplained(readFileSync(join(TEST_DIR, 'reliability', 'equivalent-mutants.tsv'), 'utf8'));
  assert.ok(explained.size > 50, `${explained.size} explanations read`);
  for (const [key, why] of explained) {
    assert.match(key.split('\t')[0]!, /^(src|stages)\/[\w/.-]+\.ts$/, key);
    assert.match(key.split('\t')[2]!, /⟦[\s\S]*⟧/, `the replaced code is marked: ${key}`);
    assert.ok(why.trim().length >= 20, `a reason, not a word: ${key}`);
  }
});

test('the mutation results kept in git: each area report holds only its own modules, and a module edited since is named stale', async () => {
  const { AREAS, fileOf, staleFiles } = await import('./reliability/mutate.ts');
  const dir = join(TEST_DIR, 'reliability', 'mutation');
  const kept = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(kept.length >= 1, `area reports found: ${kept.join(', ')}`);
  for (const name of kept) {
    const area = AREAS.find((a) => name === `incremental-${a.area}.json`);
    assert.ok(area, `${name} is named after an area of test/reliability/mutate.ts`);
    const report = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { files: Record<string, { source: string; mutants: unknown[] }> };
    const own = area.mutate.map(fileOf);
    for (const file of Object.keys(report.files)) assert.ok(own.includes(file), `${name}: ${file} belongs to area ${area.area}`);
  }
  const report = { files: { 'a.ts': { source: 'x = 1\n', mutants: [] }, 'b.ts': { source: 'y\n', mutants: [] }, 'c.ts': { source: 'z\n', mutants: [] } } };
  const now: Record<string, string> = { 'a.ts': 'x = 1\n', 'b.ts': 'y \n' };
  assert.deepEqual(staleFiles(report, (f) => now[f]), ['b.ts', 'c.ts'], 'an edited file and a removed one are stale; an unchanged one is not');
});
