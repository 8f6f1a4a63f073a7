// NumPy .npy files (format 1.0, little-endian float32, C order): readable with np.load, also
// memory-mapped (mmap_mode='r'). Written by streaming: header first (the shape is known up front),
// then rows as they come, so a corpus larger than memory never has to be held whole.
import { open, type FileHandle } from 'node:fs/promises';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export function npyHeader(shape: number[]): Uint8Array {
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  // Magic (6) + version (2) + header length (2) + dict, padded with spaces to a multiple of 64, ending in \n.
  const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
  const text = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  for (let i = 0; i < text.length; i++) out[10 + i] = text.charCodeAt(i);
  return out;
}

export class NpyWriter {
  private written = 0;
  private constructor(private readonly fh: FileHandle, private readonly expected: number, readonly path: string) {}

  static async create(path: string, shape: number[]): Promise<NpyWriter> {
    const fh = await open(path, 'w');
    await fh.write(npyHeader(shape));
    return new NpyWriter(fh, shape.reduce((a, b) => a * b, 1), path);
  }

  async write(values: Float32Array): Promise<void> {
    await this.fh.write(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    this.written += values.length;
  }

  async close(): Promise<void> {
    await this.fh.sync();
    await this.fh.close();
    if (this.written !== this.expected) throw new Error(`${this.path}: wrote ${this.written} values, the header promises ${this.expected}`);
  }
}

/** Reads a float32 .npy file whole (tests, small files). */
export function readNpy(path: string): { shape: number[]; data: Float32Array } {
  const buf = readFileSync(path);
  const len = buf.readUInt16LE(8);
  const header = buf.subarray(10, 10 + len).toString('latin1');
  if (!header.includes("'<f4'")) throw new Error(`${path}: only little-endian float32 is supported`);
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const start = 10 + len;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return { shape, data };
}

/** Rows [offset, offset + count) of a 2-D float32 .npy file, read without loading the rest. */
export function readNpyRows(path: string, offset: number, count: number, cols: number): Float32Array {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(10);
    readSync(fd, head, 0, 10, 0);
    const start = 10 + head.readUInt16LE(8);
    const out = new Float32Array(count * cols);
    readSync(fd, new Uint8Array(out.buffer), 0, out.byteLength, start + offset * cols * 4);
    return out;
  } finally {
    closeSync(fd);
  }
}
