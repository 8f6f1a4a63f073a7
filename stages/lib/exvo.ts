// The ExVo Multi-task layout (data_info.csv + wav/<id>.wav) and the clip manifest the `exvo` stage
// writes for the stages after it.
import { readFileSync } from 'node:fs';
import { decodeWav } from './wav.ts';

/** The ten emotion columns, in the published order. */
export const EMOTIONS = ['Awe', 'Excitement', 'Amusement', 'Awkwardness', 'Fear', 'Horror', 'Distress', 'Triumph', 'Sadness', 'Surprise'] as const;
export const COUNTRIES = ['United States', 'China', 'Venezuela', 'South Africa'] as const;
export const SPLITS = ['Train', 'Val', 'Test'] as const;
export const META_COLUMNS = ['File_ID', 'Split', 'Subject_ID', 'Country', 'Age'] as const;
export const COLUMNS = [...META_COLUMNS, ...EMOTIONS];

export type Split = (typeof SPLITS)[number];

export interface Clip {
  id: string;
  split: Split;
  subject: string;
  country: string;
  age: number | null;
  /** The ten intensities in EMOTIONS order; null for Test rows. */
  labels: number[] | null;
  /** Path of the audio inside the dataset folder. */
  wav: string;
  /** Samples at the manifest's sample rate. */
  samples: number;
}

export interface Manifest {
  sampleRate: number;
  emotions: readonly string[];
  clips: Clip[];
}

/** CSV rows (RFC 4180 quoting), header included. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field.length || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ''));
}

export function csvLine(values: Array<string | number>): string {
  return values.map((v) => (typeof v === 'string' && /[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : String(v))).join(',');
}

/** `[58712]` (as ExVo writes it) or `58712` -> `58712`. */
export function fileId(raw: string): string {
  return raw.trim().replace(/^\[(.*)\]$/, '$1');
}

export function readManifest(datasetDir: string): Manifest {
  return JSON.parse(readFileSync(`${datasetDir}/clips.json`, 'utf8')) as Manifest;
}

/** Mono float32 samples of a clip in a dataset folder (already at the manifest's rate). */
export function loadClip(datasetDir: string, clip: Clip): Float32Array {
  return decodeWav(readFileSync(`${datasetDir}/${clip.wav}`)).samples;
}
