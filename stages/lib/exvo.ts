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

/** A data_info.csv row the loader cannot use, and why (the stage adds the file and row). */
export class RowError extends Error {}

/** Column name -> index in the header; the file's columns may come in any order. */
export function columnIndex(header: string[], csvPath: string): Map<string, number> {
  const col = new Map(header.map((h, i) => [h.trim(), i]));
  const missing = COLUMNS.filter((c) => !col.has(c));
  if (missing.length) throw new Error(`${csvPath}: missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (found: ${header.join(', ')})`);
  return col;
}

/** A cell of a row by column name, trimmed ('' where the row is short). */
export function cell(row: string[], col: Map<string, number>, name: string): string {
  return (row[col.get(name)!] ?? '').trim();
}

/** What a row says of its clip before the audio is read. */
export type RowInfo = Omit<Clip, 'wav' | 'samples'>;

/**
 * One row's metadata and labels, checked: a File_ID not seen before (`seen`: id -> its row, filled
 * here), a known split, ten labels in [0, 1] (none for Test), an age that is a number or empty.
 * Undefined for a row of a split not wanted (its labels are not read). Throws RowError.
 */
export function parseRow(row: string[], col: Map<string, number>, line: number, seen: Map<string, number>, wanted: ReadonlySet<Split>): RowInfo | undefined {
  const get = (c: string) => cell(row, col, c);
  const id = fileId(get('File_ID'));
  if (!id) throw new RowError('empty File_ID');
  if (seen.has(id)) throw new RowError(`duplicate File_ID ${id} (first on row ${seen.get(id)})`);
  seen.set(id, line);
  const split = get('Split') as Split;
  if (!SPLITS.includes(split)) throw new RowError(`Split '${get('Split')}' is not one of ${SPLITS.join(', ')}`);
  if (!wanted.has(split)) return undefined;
  const labels =
    split === 'Test'
      ? null
      : EMOTIONS.map((e) => {
          const raw = get(e);
          const v = Number(raw);
          if (raw === '' || !Number.isFinite(v)) throw new RowError(`${e} '${raw}' is not a number`);
          if (v < 0 || v > 1) throw new RowError(`${e} ${v} is outside [0, 1]`);
          return v;
        });
  const ageRaw = get('Age');
  const age = ageRaw === '' ? null : Number(ageRaw);
  if (age !== null && !Number.isFinite(age)) throw new RowError(`Age '${ageRaw}' is not a number`);
  return { id, split, subject: get('Subject_ID'), country: get('Country'), age, labels };
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
