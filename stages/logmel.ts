// logmel: log-mel spectrograms of every clip of a dataset (the `exvo` stage's output), computed in
// parallel worker threads (one per core by default), written as a tensor store that streams:
//   features/<Split>.npy   float32 [total frames, n_mels], clips one after another (np.load works,
//                          also with mmap_mode='r'); frames per clip = 1 + floor(samples / hop)
//   features/index.json    the configuration, the emotion names, and per split every clip's id,
//                          first frame (offset), frame count, labels, country, age and subject
// Rows are written in clip order as workers finish, so memory holds a few batches, not the corpus.
// Defaults are the reference configuration (PANNs/RRTN): 16 kHz, n_fft 512, Hann 512, hop 160,
// 64 slaney mel bands over 50-8000 Hz, 10 log10(max(x, 1e-10)).
import { availableParallelism } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { defineStage } from '../src/stage-api.ts';
import { loadClip, readManifest, SPLITS, type Clip } from './lib/exvo.ts';
import { LogMel, type LogMelConfig } from './lib/logmel.ts';
import { NpyWriter } from './lib/npy.ts';

/** The log-mel configuration (all of it a parameter), plus how the work is spread. */
interface Params extends Required<LogMelConfig> {
  /** Worker threads; 0: one per core. */
  workers: number;
  /** Clips per message to a worker. */
  batch: number;
}

interface WorkerJob {
  stageWorker: 'logmel';
  dataset: string;
  config: LogMelConfig;
}

interface Batch {
  seq: number;
  clips: Clip[];
}

function configOf({ workers: _w, batch: _b, ...config }: Params): LogMelConfig {
  return config;
}

// Worker side: the same compiled module, started with workerData naming this role.
if (!isMainThread && (workerData as WorkerJob | undefined)?.stageWorker === 'logmel') {
  const job = workerData as WorkerJob;
  const lm = await LogMel.create(job.config);
  parentPort!.on('message', (b: Batch) => {
    const parts = b.clips.map((c) => lm.compute(loadClip(job.dataset, c)));
    const total = parts.reduce((s, p) => s + p.length, 0);
    const out = new Float32Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    parentPort!.postMessage({ seq: b.seq, data: out }, [out.buffer]);
  });
}

export default defineStage<Params>({
  description: 'Log-mel spectrograms of a dataset, as .npy per split plus a JSON index.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sampleRate: { type: 'integer', default: 16000 },
      nFft: { type: 'integer', minimum: 32, default: 512 },
      winLength: { type: 'integer', minimum: 2, default: 512 },
      hop: { type: 'integer', minimum: 1, default: 160 },
      nMels: { type: 'integer', minimum: 1, default: 64 },
      fMin: { type: 'number', minimum: 0, default: 50 },
      fMax: { type: 'number', minimum: 1, default: 8000 },
      amin: { type: 'number', exclusiveMinimum: 0, default: 1e-10 },
      precision: { enum: ['float32', 'float64'], default: 'float32' },
      workers: { type: 'integer', minimum: 0, default: 0 },
      batch: { type: 'integer', minimum: 1, default: 16 },
    },
  },
  inputs: ['dataset'],
  outputs: ['features'],
  async run(ctx) {
    const p = ctx.params;
    const dataset = ctx.inputs.dataset as string;
    const manifest = readManifest(dataset);
    if (manifest.sampleRate !== p.sampleRate) {
      throw new Error(`the dataset is at ${manifest.sampleRate} Hz but logmel's sampleRate is ${p.sampleRate}: set the same rate on both stages`);
    }
    if (p.fMax > p.sampleRate / 2) throw new Error(`fMax ${p.fMax} is above the Nyquist frequency ${p.sampleRate / 2}`);
    const config = configOf(p);
    await LogMel.create(config); // checks the configuration before starting workers
    const out = ctx.outputs.features!;
    await mkdir(out, { recursive: true });
    const nWorkers = Math.max(1, p.workers || availableParallelism());
    const workers = Array.from({ length: nWorkers }, () => new Worker(ctx.modulePath, { workerData: { stageWorker: 'logmel', dataset, config } satisfies WorkerJob }));
    const index: Record<string, unknown> = {};
    const totalClips = manifest.clips.length;
    let done = 0;
    try {
      for (const split of SPLITS) {
        const clips = manifest.clips.filter((c) => c.split === split);
        if (!clips.length) continue;
        const short = clips.find((c) => c.samples <= p.nFft / 2);
        if (short) {
          throw new Error(`clip ${short.id} (${split}) has ${short.samples} samples, too short for n_fft ${p.nFft} with centre padding (it needs more than ${p.nFft / 2}): leave such clips out in the dataset stage (its minSamples, with skipBad: true)`);
        }
        const frames = clips.map((c) => 1 + Math.floor(c.samples / p.hop));
        const total = frames.reduce((a, b) => a + b, 0);
        const file = `${split}.npy`;
        const writer = await NpyWriter.create(join(out, file), [total, p.nMels]);
        const batches: Batch[] = [];
        for (let i = 0; i < clips.length; i += p.batch) batches.push({ seq: batches.length, clips: clips.slice(i, i + p.batch) });
        // Each worker keeps two batches in flight; results are written strictly in order.
        const pending = new Map<number, Float32Array>();
        let next = 0;
        let sent = 0;
        let failure: Error | undefined;
        await new Promise<void>((resolveSplit, rejectSplit) => {
          const flush = async () => {
            while (pending.has(next)) {
              const data = pending.get(next)!;
              pending.delete(next);
              await writer.write(data);
              done += batches[next]!.clips.length;
              next++;
              ctx.progress(done / totalClips, `${split}: ${Math.min(next * p.batch, clips.length)}/${clips.length} clips`);
            }
            if (next === batches.length) resolveSplit();
          };
          const send = (w: Worker) => {
            if (sent < batches.length && !failure) w.postMessage(batches[sent++]);
          };
          let chain = Promise.resolve();
          for (const w of workers) {
            w.removeAllListeners('message').removeAllListeners('error');
            w.on('message', (m: { seq: number; data: Float32Array }) => {
              pending.set(m.seq, m.data);
              send(w);
              chain = chain.then(flush).catch((e: Error) => rejectSplit(e));
            });
            w.on('error', (e) => {
              failure = e;
              rejectSplit(new Error(`logmel worker failed: ${e.message}`));
            });
            send(w);
            send(w);
          }
          ctx.signal.addEventListener('abort', () => rejectSplit(ctx.signal.reason), { once: true });
        });
        await writer.close();
        let offset = 0;
        index[split] = {
          file,
          frames: total,
          clips: clips.map((c, i) => {
            const entry = { id: c.id, offset, frames: frames[i]!, labels: c.labels, country: c.country, age: c.age, subject: c.subject };
            offset += frames[i]!;
            return entry;
          }),
        };
      }
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
    }
    await writeFile(join(out, 'index.json'), JSON.stringify({ config, emotions: manifest.emotions, splits: index }));
    ctx.log.info(`${totalClips} clips with ${nWorkers} workers`);
  },
});
