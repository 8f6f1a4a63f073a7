// exvo: reads a corpus in the ExVo Multi-task layout (data_info.csv + wav/<id>.wav) and writes a
// checked dataset for the stages after it: clips.json (splits, the ten intensities in the published
// order, country, age, subject, sample counts) and wav/ holding every clip as mono audio at the
// pipeline's sample rate. Clips already mono at that rate are linked or copied unchanged; stereo
// is downmixed, other rates are resampled (libsamplerate, medium quality sinc).
//
// Bad input stops the stage with the file and row named: a missing or unreadable wav, a malformed
// header or an encoding scipy would not read either, samples that are NaN or infinite, a clip
// shorter than the features need (minSamples), a missing column, a label outside [0, 1] or not a
// number, a duplicate id. With skipBad: true such rows are left out instead, each listed with its
// reason in skipped.csv, and the run's console says how many. Float clips stay float (values above
// full scale are kept, and counted in a warning); converted clips are written as float32.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { defineStage } from '../src/stage-api.ts';
import { EMOTIONS, RowError, SPLITS, cell, columnIndex, csvLine, fileId, parseCsv, parseRow, type Clip, type Manifest, type Split } from './lib/exvo.ts';
import { decodeWav, encodeWavFloat32, WavError } from './lib/wav.ts';

interface Params {
  sampleRate: number;
  skipBad: boolean;
  minSamples: number;
  /** Only these splits (default all three). */
  splits: Split[];
}

export default defineStage<Params>({
  description: 'ExVo Multi-task corpus -> checked dataset (mono, one sample rate) with a clip manifest.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sampleRate: { type: 'integer', minimum: 8000, default: 16000 },
      skipBad: { type: 'boolean', default: false, description: 'Leave out bad rows (listed in skipped.csv) instead of failing.' },
      minSamples: {
        type: 'integer',
        minimum: 1,
        default: 257,
        description: 'Shortest clip accepted (at sampleRate): log-mel features with centre padding need more than n_fft / 2 samples (257 for the reference n_fft of 512).',
      },
      splits: { type: 'array', items: { enum: [...SPLITS] }, default: [...SPLITS], minItems: 1 },
    },
  },
  inputs: ['corpus'],
  outputs: ['dataset'],
  async run(ctx) {
    const corpus = ctx.inputs.corpus as string;
    const out = ctx.outputs.dataset!;
    const p = ctx.params;
    const { sampleRate, skipBad } = p;
    const csvPath = join(corpus, 'data_info.csv');
    let text: string;
    try {
      text = await readFile(csvPath, 'utf8');
    } catch {
      throw new Error(`${csvPath}: cannot read data_info.csv (an ExVo corpus has data_info.csv and wav/<id>.wav)`);
    }
    const [header, ...rows] = parseCsv(text);
    if (!header) throw new Error(`${csvPath}: empty file`);
    const col = columnIndex(header, csvPath);

    await mkdir(join(out, 'wav'), { recursive: true });
    const clips: Clip[] = [];
    const skipped: string[] = [csvLine(['row', 'File_ID', 'reason'])];
    const seen = new Map<string, number>();
    const resampler = new Resamplers();
    const wanted = new Set<Split>(ctx.params.splits);
    for (let r = 0; r < rows.length; r++) {
      ctx.signal.throwIfAborted();
      const row = rows[r]!;
      const line = r + 2; // 1-based, after the header
      const id = fileId(cell(row, col, 'File_ID'));
      try {
        const info = parseRow(row, col, line, seen, wanted);
        if (!info) continue;
        const wavPath = join(corpus, 'wav', `${id}.wav`);
        let bytes: Buffer;
        try {
          bytes = await readFile(wavPath);
        } catch (e) {
          throw new RowError(`${wavPath}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable'}`);
        }
        let wav;
        try {
          wav = decodeWav(bytes);
        } catch (e) {
          throw new RowError(`${wavPath}: ${e instanceof WavError ? e.message : `cannot be decoded (${(e as Error).message})`}`);
        }
        if (wav.samples.length === 0) throw new RowError(`${wavPath}: no audio samples`);
        for (const w of wav.warnings) ctx.log.warn(`${wavPath}: ${w}`);
        let bad = 0;
        let loud = 0;
        for (const v of wav.samples) {
          if (!Number.isFinite(v)) bad++;
          else if (v > 1 || v < -1) loud++;
        }
        if (bad) throw new RowError(`${wavPath}: ${bad} of ${wav.samples.length} samples are NaN or infinite`);
        if (loud) ctx.log.warn(`${wavPath}: ${loud} of ${wav.samples.length} samples are above full scale (kept as they are)`);
        const dest = join(out, 'wav', `${id}.wav`);
        let samples = wav.samples;
        if (wav.sampleRate !== sampleRate) samples = await resampler.convert(samples, wav.sampleRate, sampleRate);
        if (samples.length < p.minSamples) throw new RowError(`${wavPath}: ${samples.length} samples at ${sampleRate} Hz, fewer than minSamples ${p.minSamples} (the features need more than n_fft / 2)`);
        if (wav.channels === 1 && wav.sampleRate === sampleRate && wav.format === 'pcm16' && !wav.warnings.length) {
          await ctx.importFile(wavPath, dest);
        } else {
          await writeFile(dest, encodeWavFloat32(samples, sampleRate));
        }
        clips.push({ ...info, wav: `wav/${id}.wav`, samples: samples.length });
      } catch (e) {
        if (!(e instanceof RowError)) throw e;
        const where = `${csvPath} row ${line}${id ? ` (File_ID ${id})` : ''}`;
        if (!skipBad) throw new Error(`${where}: ${e.message}. Fix the row, or set skipBad: true to leave bad rows out (they are listed in skipped.csv).`);
        skipped.push(csvLine([line, id, e.message]));
        ctx.log.info(`skipped ${where}: ${e.message}`);
      }
      if (r % 200 === 0) ctx.progress(r / rows.length, `${r}/${rows.length} rows`);
    }
    resampler.close();
    if (!clips.length) throw new Error(`${csvPath}: no usable rows`);
    const manifest: Manifest = { sampleRate, emotions: EMOTIONS, clips };
    await writeFile(join(out, 'clips.json'), JSON.stringify(manifest));
    await writeFile(join(out, 'skipped.csv'), `${skipped.join('\n')}\n`);
    if (skipped.length > 1) {
      const reasons = [...new Set(skipped.slice(1).map((l) => l.split(',').slice(2).join(',').replace(/^.*\.wav: /, '').replace(/\d+/g, 'N')))].slice(0, 3);
      ctx.notice(`${skipped.length - 1} of ${rows.length} rows skipped (skipBad), listed in skipped.csv of its output 'dataset'; e.g. ${reasons.join('; ')}`);
    }
    ctx.log.info(`${clips.length} clips: ${SPLITS.map((s) => `${s} ${clips.filter((c) => c.split === s).length}`).join(', ')}`);
  },
});

/** One libsamplerate converter per source rate, created on first use. */
class Resamplers {
  private readonly byRate = new Map<number, { simple(x: Float32Array): Float32Array; destroy(): void }>();

  async convert(x: Float32Array, from: number, to: number): Promise<Float32Array> {
    let src = this.byRate.get(from);
    if (!src) {
      const mod = await import('@alexanderolsen/libsamplerate-js');
      // A CommonJS package: its exports arrive as the default export under ESM.
      const { create, ConverterType } = ((mod as unknown as { default?: typeof mod }).default ?? mod) as typeof mod;
      src = await create(1, from, to, { converterType: ConverterType.SRC_SINC_MEDIUM_QUALITY });
      this.byRate.set(from, src);
    }
    return src.simple(x);
  }

  close(): void {
    for (const s of this.byRate.values()) s.destroy();
  }
}
