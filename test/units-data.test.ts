// The ExVo loader's pure parts as units: CSV reading, the header, and each row's checks, with
// exact values. The stage around them (audio, resampling, skipBad) is run on real corpora in
// features-data.test.ts.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { COLUMNS, EMOTIONS, RowError, SPLITS, cell, columnIndex, csvLine, fileId, loadClip, parseCsv, parseRow, type Clip, type Split } from '../stages/lib/exvo.ts';
import { encodeWavFloat32 } from '../stages/lib/wav.ts';

test('CSV: quoted fields with commas, quotes and newlines; CRLF and CR line ends; blank lines and a missing last newline', () => {
  assert.deepEqual(parseCsv('a,b\r\n"x, y","say ""hi"""\n"two\nlines",\r\n\n3,4'), [
    ['a', 'b'],
    ['x, y', 'say "hi"'],
    ['two\nlines', ''],
    ['3', '4'],
  ]);
  assert.deepEqual(parseCsv('a\rb\r'), [['a'], ['b']]);
  assert.deepEqual(parseCsv(''), []);
  assert.deepEqual(parseCsv(',\n'), [['', '']]);
  // A last line with no newline is a row whether it has one field or several.
  assert.deepEqual(parseCsv('a\nb'), [['a'], ['b']]);
  assert.deepEqual(parseCsv('a\nb,'), [['a'], ['b', '']]);
  assert.equal(csvLine(['a', 1, 'x,y', 'q"q', 'l\nl']), 'a,1,"x,y","q""q","l\nl"');
  assert.deepEqual(parseCsv(csvLine(['x,y', 'q"q', 'p']) + '\n'), [['x,y', 'q"q', 'p']], 'csvLine reads back');
});

test('File_ID as ExVo writes it ([58712]) or bare', () => {
  assert.equal(fileId('[58712]'), '58712');
  assert.equal(fileId(' 58712 '), '58712');
  assert.equal(fileId('[ab]c]'), 'ab]c');
  assert.equal(fileId('[58712'), '[58712');
  // Only brackets around the whole ID are ExVo's: anything else is part of the ID.
  assert.equal(fileId('x[58712]'), 'x[58712]');
  assert.equal(fileId('[58712]x'), '[58712]x');
});

const HEADER = [...COLUMNS].reverse(); // any column order
const col = columnIndex(HEADER, 'd.csv');
/** A row in HEADER's order from named values (emotions default to their index / 10). */
function row(values: Partial<Record<string, string>>): string[] {
  const named: Record<string, string> = { File_ID: '[1]', Split: 'Train', Subject_ID: 's1', Country: 'China', Age: '31', ...Object.fromEntries(EMOTIONS.map((e, i) => [e, String(i / 10)])) };
  return HEADER.map((h) => values[h] ?? named[h]!);
}
const ALL = new Set<Split>(SPLITS);

test('the header: columns found by name in any order; missing ones named', () => {
  assert.equal(col.get('File_ID'), HEADER.length - 1);
  assert.equal(col.get('Surprise'), 0);
  assert.equal(cell(row({ Country: '  Venezuela ' }), col, 'Country'), 'Venezuela');
  assert.equal(cell(['x'], col, 'Age'), '', 'a short row reads as empty cells');
  assert.deepEqual([...columnIndex([' File_ID ', ...COLUMNS.slice(1)], 'd.csv').keys()], [...COLUMNS]);
  assert.throws(() => columnIndex(['File_ID', 'Split'], 'd.csv'), (e: Error) => e.message === `d.csv: missing columns Subject_ID, Country, Age, ${EMOTIONS.join(', ')} (found: File_ID, Split)`);
  assert.throws(() => columnIndex(COLUMNS.filter((c) => c !== 'Fear'), 'd.csv'), (e: Error) => e.message.startsWith('d.csv: missing column Fear (found: '));
});

test('a row: each emotion by its column, in the published order; metadata kept; Test rows unlabelled', () => {
  const seen = new Map<string, number>();
  assert.deepEqual(parseRow(row({}), col, 2, seen, ALL), {
    id: '1',
    split: 'Train',
    subject: 's1',
    country: 'China',
    age: 31,
    labels: [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
  });
  assert.deepEqual(seen, new Map([['1', 2]]));
  assert.deepEqual(parseRow(row({ File_ID: '2', Split: 'Test', Awe: '', Age: '' }), col, 3, seen, ALL), { id: '2', split: 'Test', subject: 's1', country: 'China', age: null, labels: null });
  assert.deepEqual(parseRow(row({ File_ID: '3', Split: 'Val', Awe: '1', Surprise: '0' }), col, 4, seen, ALL)!.labels, [1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0]);
  // A split not wanted: left out without reading its labels, but its id still counts.
  assert.equal(parseRow(row({ File_ID: '4', Split: 'Val', Fear: 'bad' }), col, 5, seen, new Set<Split>(['Train'])), undefined);
  assert.equal(seen.get('4'), 5);
});

test('a row: every reason it cannot be used, worded for the user', () => {
  const cases: Array<[Partial<Record<string, string>>, string]> = [
    [{ File_ID: ' ' }, 'empty File_ID'],
    [{ File_ID: '[]' }, 'empty File_ID'],
    [{ Split: 'train' }, "Split 'train' is not one of Train, Val, Test"],
    [{ Fear: '' }, "Fear '' is not a number"],
    [{ Fear: 'high' }, "Fear 'high' is not a number"],
    [{ Fear: 'NaN' }, "Fear 'NaN' is not a number"],
    [{ Fear: 'Infinity' }, "Fear 'Infinity' is not a number"],
    [{ Fear: '1.01' }, 'Fear 1.01 is outside [0, 1]'],
    [{ Awe: '-0.5' }, 'Awe -0.5 is outside [0, 1]'],
    [{ Age: 'old' }, "Age 'old' is not a number"],
  ];
  for (const [values, message] of cases) {
    assert.throws(() => parseRow(row(values), col, 2, new Map(), ALL), (e: unknown) => e instanceof RowError && e.message === message, message);
  }
  const seen = new Map<string, number>([['1', 7]]);
  assert.throws(() => parseRow(row({ File_ID: '[1]' }), col, 9, seen, ALL), (e: unknown) => e instanceof RowError && e.message === 'duplicate File_ID 1 (first on row 7)');
  // Bounds are inclusive.
  assert.deepEqual(parseRow(row({ Awe: '0', Surprise: '1' }), col, 2, new Map(), ALL)!.labels!.filter((_, i) => i === 0 || i === 9), [0, 1]);
});

test('a clip is read from its path inside the dataset folder', (t) => {
  const d = mkdtempSync(join(tmpdir(), 'exvo-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  mkdirSync(join(d, 'wav'));
  writeFileSync(join(d, 'wav', '1.wav'), encodeWavFloat32(new Float32Array([0.5, -0.25, 0]), 16000));
  writeFileSync(join(d, '1.wav'), encodeWavFloat32(new Float32Array([1]), 16000));
  const clip = { id: '1', wav: 'wav/1.wav' } as Clip;
  assert.deepEqual([...loadClip(d, clip)], [0.5, -0.25, 0]);
});
