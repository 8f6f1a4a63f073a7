// The data stages on real files through the CLI: the synthetic corpus, the ExVo loader (and each
// kind of bad input), log-mel features, the distortion policy, and their caching in a pipeline.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readNpy } from '../stages/lib/npy.ts';
import { decodeWav, encodeWav16, encodeWavFloat32 } from '../stages/lib/wav.ts';
import { EMOTIONS, parseCsv } from '../stages/lib/exvo.ts';
import { CUES, MAP } from '../stages/synth-vocal-bursts.ts';
import { ran, Workspace } from './helpers/workspace.ts';

const PIPE = (clips: number, extra = '') => `seed: 7
stages:
  synth:
    uses: stages/synth-vocal-bursts.ts
    params: { clips: ${clips}, speakers: 12, maxSeconds: 1.2 }
    outs: { corpus: corpus }
  data:
    uses: stages/exvo.ts
    inputs: { corpus: "\${stages.synth.outputs.corpus}" }
    outs: { dataset: dataset }
  features:
    uses: stages/logmel.ts
    inputs: { dataset: "\${stages.data.outputs.dataset}" }
    params: { workers: 2${extra} }
    outs: { features: features }
  views:
    uses: stages/distort.ts
    inputs: { features: "\${stages.features.outputs.features}" }
    outs: { preview: preview }
`;

function digestDir(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir, { recursive: true }).map(String).sort()) {
    const p = join(dir, f);
    try {
      h.update(f).update(readFileSync(p));
    } catch {
      // a folder
    }
  }
  return h.digest('hex');
}

test('the data pipeline runs, caches, and reruns only what a change touches', (t) => {
  const ws = new Workspace({ 'p.yaml': PIPE(40) });
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(ran(r), ['data', 'features', 'synth', 'views']);

  const index = JSON.parse(ws.read('features/index.json'));
  const manifest = JSON.parse(ws.read('dataset/clips.json'));
  assert.equal(manifest.clips.length, 40);
  let clips = 0;
  for (const [split, s] of Object.entries(index.splits) as Array<[string, { file: string; frames: number; clips: Array<{ offset: number; frames: number; labels: number[] | null }> }]>) {
    const npy = readNpy(ws.path(`features/${s.file}`));
    assert.deepEqual(npy.shape, [s.frames, 64], `${split} shape`);
    assert.ok(npy.data.every(Number.isFinite), "npy.data.every(Number.isFinite)");
    const last = s.clips[s.clips.length - 1]!;
    assert.equal(last.offset + last.frames, s.frames);
    for (const c of s.clips) assert.equal(c.labels === null, split === 'Test');
    clips += s.clips.length;
  }
  assert.equal(clips, 40);
  const png = readFileSync(ws.path('preview/preview.png'));
  assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"

  assert.deepEqual(ran(ws.run('run', 'p.yaml')), []);
  ws.write('p.yaml', PIPE(40, ', nMels: 32'));
  const r2 = ws.run('run', 'p.yaml');
  assert.deepEqual(ran(r2), ['features', 'views']);
  assert.equal(JSON.parse(ws.read('features/index.json')).config.nMels, 32);
});

test('the synthetic corpus: same seed same bytes, another seed other bytes, labels follow the documented map', (t) => {
  const ws = new Workspace({ 'p.yaml': PIPE(60) });
  t.after(() => ws.dispose());
  assert.equal(ws.run('run', 'p.yaml', 'synth').code, 0);
  const first = digestDir(ws.path('corpus'));
  assert.equal(ws.run('run', 'p.yaml', 'synth', '--force', 'synth').code, 0);
  assert.equal(digestDir(ws.path('corpus')), first, 'same seed, same bytes');
  assert.equal(ws.run('run', 'p.yaml', 'synth', '--set', 'stages.synth.seed=8').code, 0);
  assert.notEqual(digestDir(ws.path('corpus')), first, 'another seed, other bytes');

  const [header, ...rows] = parseCsv(ws.read('corpus/data_info.csv'));
  assert.deepEqual(header!.slice(5), [...EMOTIONS]);
  const cues = new Map(parseCsv(ws.read('corpus/params.csv')).slice(1).map((r) => [r[0]!, r.slice(1).map(Number)]));
  assert.equal(cues.get('10000')!.length, CUES.length);
  const labelled = rows.filter((r) => r[1] !== 'Test');
  assert.ok(labelled.length >= 20, "labelled.length >= 20");
  for (const r of rows.filter((x) => x[1] === 'Test')) assert.ok(r.slice(5).every((v) => v === ''), "r.slice(5).every((v) => v === '')");
  // Each intensity tracks the map's logistic of the cues (speaker offsets and rater noise aside).
  EMOTIONS.forEach((e, i) => {
    const m = MAP[e];
    const predicted = labelled.map((r) => {
      const c = cues.get(r[0]!.slice(1, -1))!;
      return 1 / (1 + Math.exp(-(m.bias + m.w.reduce((s, w, k) => s + w * c[k]!, 0) + (m.interaction?.(c) ?? 0))));
    });
    const actual = labelled.map((r) => Number(r[5 + i]));
    assert.ok(actual.every((v) => v >= 0 && v <= 1), "actual.every((v) => v >= 0 && v <= 1)");
    assert.ok(correlation(predicted, actual) > 0.8, `${e}: labels should follow the map (r = ${correlation(predicted, actual).toFixed(2)})`);
  });
});

function correlation(a: number[], b: number[]): number {
  const ma = a.reduce((s, x) => s + x, 0) / a.length;
  const mb = b.reduce((s, x) => s + x, 0) / b.length;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - ma) * (b[i]! - mb);
    da += (a[i]! - ma) ** 2;
    db += (b[i]! - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

const LOADER = `stages:
  data:
    uses: stages/exvo.ts
    inputs: { corpus: exvo }
    outs: { dataset: dataset }
`;

function exvoWorkspace(rows: string[], wavs: Record<string, Uint8Array>, header = 'File_ID,Split,Subject_ID,Country,Age,' + EMOTIONS.join(',')): Workspace {
  const ws = new Workspace({ 'p.yaml': LOADER, 'exvo/data_info.csv': `${header}\n${rows.join('\n')}\n` });
  mkdirSync(ws.path('exvo/wav'), { recursive: true });
  for (const [id, bytes] of Object.entries(wavs)) writeFileSync(ws.path(`exvo/wav/${id}.wav`), bytes);
  return ws;
}

const labels = (v = '0.5') => EMOTIONS.map(() => v).join(',');
const tone = (rate: number, seconds: number, hz = 440) => Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate));

test('the ExVo loader: splits, labels, downmix and resampling', (t) => {
  const stereo = tone(16000, 0.5);
  const interleaved = new Float32Array(stereo.length * 2);
  stereo.forEach((v, i) => {
    interleaved[2 * i] = v;
    interleaved[2 * i + 1] = -v * 0.5; // the downmix must average: 0.25 v
  });
  const ws = exvoWorkspace(
    [`[1],Train,S1,China,30,${labels('0.25')}`, `[2],Val,S2,Venezuela,41,${labels()}`, `[3],Test,S3,South Africa,22,${EMOTIONS.map(() => '').join(',')}`],
    { '1': encodeWav16(tone(16000, 0.5), 16000), '2': encodeWav16(interleaved, 16000, 2), '3': encodeWav16(tone(44100, 1, 1000), 44100) },
  );
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(ws.read('dataset/clips.json'));
  assert.deepEqual(m.clips.map((c: { id: string; split: string }) => [c.id, c.split]), [['1', 'Train'], ['2', 'Val'], ['3', 'Test']]);
  assert.deepEqual(m.clips[0].labels, EMOTIONS.map(() => 0.25));
  assert.equal(m.clips[2].labels, null);
  const down = decodeWav(readFileSync(ws.path('dataset/wav/2.wav')));
  assert.equal(down.channels, 1);
  assert.ok(Math.abs(down.samples[100]! - 0.25 * stereo[100]!) < 1e-3, 'stereo averaged to mono');
  const res = decodeWav(readFileSync(ws.path('dataset/wav/3.wav')));
  assert.equal(res.sampleRate, 16000);
  assert.ok(Math.abs(res.samples.length - 16000) <= 2, `1 s at 16 kHz, got ${res.samples.length} samples`);
  // The 1 kHz tone survives resampling: zero crossings per second ~ 2000.
  let crossings = 0;
  for (let i = 1000; i < 15000; i++) if (res.samples[i]! >= 0 !== res.samples[i - 1]! >= 0) crossings++;
  assert.ok(Math.abs(crossings / (14000 / 16000) - 2000) < 10, `${crossings} crossings`);
});

test('the ExVo loader names the file and row of each kind of bad input; skipBad lists what it left out', (t) => {
  const good = encodeWav16(tone(16000, 0.3), 16000);
  const truncated = good.slice(0, 200);
  const alaw = good.slice();
  new DataView(alaw.buffer).setUint16(20, 6, true); // format 6: A-law
  const zeroBits = good.slice();
  new DataView(zeroBits.buffer).setUint16(34, 0, true);
  const zeroRate = good.slice();
  new DataView(zeroRate.buffer).setUint32(24, 0, true);
  const nan = encodeWavFloat32(Float32Array.from(tone(16000, 0.3), (v, i) => (i % 1000 === 0 ? Number.NaN : v)), 16000);
  const cases: Array<[string, string, Record<string, Uint8Array>, RegExp]> = [
    ['missing wav', `[1],Train,S,China,30,${labels()}`, {}, /row 2 \(File_ID 1\): .*exvo\/wav\/1\.wav: missing/],
    // Cut short: read as far as it goes (as scipy does), here leaving too few samples.
    ['truncated wav', `[1],Train,S,China,30,${labels()}`, { '1': truncated }, /row 2 \(File_ID 1\): .*1\.wav: 78 samples at 16000 Hz, fewer than minSamples 257/],
    ['0 bits per sample', `[1],Train,S,China,30,${labels()}`, { '1': zeroBits }, /row 2 \(File_ID 1\): .*1\.wav: 0 bits per sample/],
    ['sample rate 0', `[1],Train,S,China,30,${labels()}`, { '1': zeroRate }, /row 2 \(File_ID 1\): .*1\.wav: sample rate 0/],
    ['NaN samples', `[1],Train,S,China,30,${labels()}`, { '1': nan }, /row 2 \(File_ID 1\): .*1\.wav: 5 of 4800 samples are NaN or infinite/],
    ['non-PCM wav', `[1],Train,S,China,30,${labels()}`, { '1': alaw }, /row 2 \(File_ID 1\): .*1\.wav: unsupported encoding: format 6/],
    ['label outside [0, 1]', `[1],Train,S,China,30,1.5,${labels().slice(4)}`, { '1': good }, /row 2 \(File_ID 1\): Awe 1\.5 is outside \[0, 1\]/],
    ['label not a number', `[1],Train,S,China,30,abc,${labels().slice(4)}`, { '1': good }, /row 2 \(File_ID 1\): Awe 'abc' is not a number/],
  ];
  for (const [name, row, wavs, re] of cases) {
    const ws = exvoWorkspace([row], wavs);
    const r = ws.run('run', 'p.yaml');
    ws.dispose();
    assert.equal(r.code, 1, name);
    assert.match(r.stderr, re, name);
    assert.match(r.stderr, /data_info\.csv row 2/, name);
  }
  const unreadable = exvoWorkspace([`[1],Train,S,China,30,${labels()}`], {});
  t.after(() => unreadable.dispose());
  mkdirSync(unreadable.path('exvo/wav/1.wav')); // a folder where the file should be
  assert.match(unreadable.run('run', 'p.yaml').stderr, /row 2 \(File_ID 1\): .*1\.wav: unreadable/);
  const dup = exvoWorkspace([`[1],Train,S,China,30,${labels()}`, `[1],Val,S,China,30,${labels()}`], { '1': good });
  t.after(() => dup.dispose());
  assert.match(dup.run('run', 'p.yaml').stderr, /row 3 \(File_ID 1\): duplicate File_ID 1 \(first on row 2\)/);
  const col = exvoWorkspace([`[1],Train,S,China,${labels()}`], { '1': good }, 'File_ID,Split,Subject_ID,Country,' + EMOTIONS.join(','));
  t.after(() => col.dispose());
  assert.match(col.run('run', 'p.yaml').stderr, /data_info\.csv: missing column Age/);

  // skipBad: the good row stays, the bad ones are listed with their reasons.
  // Malformed headers are skippable rows too; a float clip above full scale is kept as it is.
  const loud = encodeWavFloat32(Float32Array.from(tone(16000, 0.3), (v) => v * 3), 16000);
  const skip = exvoWorkspace(
    [`[1],Train,S,China,30,${labels()}`, `[2],Train,S,China,30,${labels()}`, `[3],Val,S,China,30,2,${labels().slice(4)}`, `[4],Val,S,China,30,${labels()}`, `[5],Val,S,China,30,${labels()}`],
    { '1': good, '4': zeroBits, '5': loud },
  );
  t.after(() => skip.dispose());
  skip.write('p.yaml', LOADER.replace('inputs: { corpus: exvo }', 'inputs: { corpus: exvo }\n    params: { skipBad: true }'));
  const r = skip.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(skip.read('dataset/clips.json')).clips.map((c: { id: string }) => c.id), ['1', '5']);
  const skipped = parseCsv(skip.read('dataset/skipped.csv'));
  assert.deepEqual(skipped.map((x) => x.slice(0, 2)), [['row', 'File_ID'], ['3', '2'], ['4', '3'], ['5', '4']]);
  assert.match(skipped[1]![2]!, /missing/);
  assert.match(skipped[2]![2]!, /Awe 2 is outside/);
  assert.match(skipped[3]![2]!, /0 bits per sample/);
  // The console says how many rows were left out, and where they are listed.
  assert.match(r.stderr, /data: 3 of 5 rows skipped \(skipBad\), listed in skipped\.csv of its output 'dataset'/);
  const kept = decodeWav(readFileSync(skip.path('dataset/wav/5.wav')));
  assert.equal(kept.format, 'float32');
  assert.ok(Math.max(...kept.samples) > 1.4, 'not clipped to full scale');
});

test('a clip too short for the features is named by the log-mel stage, and kept out by the loader by default', (t) => {
  const short = encodeWav16(tone(16000, 200 / 16000), 16000);
  const ws = exvoWorkspace([`[1],Train,S,China,30,${labels()}`, `[2],Train,S,China,30,${labels()}`], { '1': encodeWav16(tone(16000, 0.3), 16000), '2': short });
  t.after(() => ws.dispose());
  const withFeatures = (loaderParams: string) => `${LOADER.replace('inputs: { corpus: exvo }', `inputs: { corpus: exvo }\n    params: { ${loaderParams} }`)}  features:
    uses: stages/logmel.ts
    inputs: { dataset: "\${stages.data.outputs.dataset}" }
    params: { workers: 1 }
`;
  ws.write('p.yaml', withFeatures('minSamples: 1'));
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stage features failed: clip 2 \(Train\) has 200 samples, too short for n_fft 512 with centre padding \(it needs more than 256\)/);
  ws.write('p.yaml', withFeatures('skipBad: true'));
  const ok = ws.run('run', 'p.yaml');
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /1 of 2 rows skipped/);
});

test('the ExVo loader maps each emotion by its column name, whatever the column order, into the published order', (t) => {
  // The ExVo Multi-task order, as published (written out here, not taken from the code under test).
  const PUBLISHED = ['Awe', 'Excitement', 'Amusement', 'Awkwardness', 'Fear', 'Horror', 'Distress', 'Triumph', 'Sadness', 'Surprise'];
  assert.deepEqual([...EMOTIONS], PUBLISHED);
  // Every emotion its own value, the columns reversed: a swap or an off-by-one shows.
  const value = (e: string) => (PUBLISHED.indexOf(e) + 1) / 20;
  const shuffled = [...PUBLISHED].reverse();
  const header = `Age,${shuffled.join(',')},File_ID,Country,Split,Subject_ID`;
  const ws = exvoWorkspace([`30,${shuffled.map(value).join(',')},[1],China,Train,S1`], { '1': encodeWav16(tone(16000, 0.3), 16000) }, header);
  t.after(() => ws.dispose());
  const r = ws.run('run', 'p.yaml');
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(ws.read('dataset/clips.json'));
  assert.deepEqual(m.emotions, PUBLISHED);
  assert.deepEqual(m.clips[0].labels, [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]);
  assert.deepEqual([m.clips[0].country, m.clips[0].age, m.clips[0].subject], ['China', 30, 'S1']);
});
