// WAV decoding to mono float32, and encoding. Reads what scipy.io.wavfile reads (its own test files
// are the peer suite, test/features-wav-peers.test.ts): RIFF (little-endian) and RIFX (big-endian),
// PCM of any container size from 1 byte (unsigned) to 8 bytes, IEEE float 32 and 64 bits, also inside
// WAVE_FORMAT_EXTENSIBLE; channels are averaged to mono. A data chunk of unknown size (0xFFFFFFFF,
// as ffmpeg writes to a pipe) runs to the end of the file; a data chunk cut short is read as far as
// it goes, with a warning. Every malformed header is a WavError naming what is wrong.

export interface DecodedWav {
  sampleRate: number;
  channels: number;
  /** Mono samples: integers scaled to [-1, 1), floats as stored (they may exceed full scale). */
  samples: Float32Array;
  format: string;
  /** Things read but worth saying (a truncated data chunk). */
  warnings: string[];
}

export class WavError extends Error {}

const FORMAT_NAMES: Record<number, string> = { 2: 'ADPCM', 6: 'A-law', 7: 'mu-law', 0x11: 'IMA ADPCM', 0x55: 'MP3' };

export function decodeWav(buf: Uint8Array): DecodedWav {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (o: number) => String.fromCharCode(buf[o]!, buf[o + 1]!, buf[o + 2]!, buf[o + 3]!);
  if (buf.length < 12 || (tag(0) !== 'RIFF' && tag(0) !== 'RIFX') || tag(8) !== 'WAVE') throw new WavError('not a RIFF/WAVE file');
  const le = tag(0) === 'RIFF';
  const u32 = (o: number) => dv.getUint32(o, le);
  let fmt: Format | undefined;
  const warnings: string[] = [];
  let off = 12;
  while (off < buf.length) {
    if (off + 8 > buf.length) throw new WavError(`incomplete chunk header at byte ${off}${fmt ? ' (no data chunk before it)' : ''}`);
    const id = tag(off);
    let size = u32(off + 4);
    const body = off + 8;
    if (id === 'fmt ') fmt = readFormat(dv, body, size, le, buf.length);
    else if (id === 'data') {
      if (!fmt) throw new WavError('data chunk before fmt chunk');
      const available = buf.length - body;
      if (size === 0xffffffff) size = available; // streamed: the size was unknown when the header was written
      else if (size > available) {
        warnings.push(`truncated: the data chunk declares ${size} bytes, the file holds ${available}; read what is there`);
        size = available;
      }
      const frames = Math.floor(size / fmt.blockAlign);
      if (frames === 0 && size > 0) throw new WavError(`the data chunk holds ${size} bytes, less than one frame of ${fmt.blockAlign}`);
      return { sampleRate: fmt.rate, channels: fmt.channels, samples: toMono(dv, body, frames, fmt, le), format: `${fmt.float ? 'float' : 'pcm'}${fmt.bits}`, warnings };
    }
    off = body + size + (size & 1);
  }
  throw new WavError(fmt ? 'no data chunk' : 'no fmt chunk');
}

interface Format {
  float: boolean;
  channels: number;
  rate: number;
  bits: number;
  blockAlign: number;
  /** Bytes each sample occupies. */
  width: number;
}

function readFormat(dv: DataView, body: number, size: number, le: boolean, length: number): Format {
  if (size < 16 || body + 16 > length) throw new WavError('truncated fmt chunk');
  let format = dv.getUint16(body, le);
  if (format === 0xfffe) {
    if (size < 40 || body + 40 > length) throw new WavError('WAVE_FORMAT_EXTENSIBLE header too short');
    format = dv.getUint32(body + 24, le); // the sub-format GUID starts with the format code (32 bits)
  }
  const channels = dv.getUint16(body + 2, le);
  const rate = dv.getUint32(body + 4, le);
  const byteRate = dv.getUint32(body + 8, le);
  const blockAlign = dv.getUint16(body + 12, le);
  const bits = dv.getUint16(body + 14, le);
  if (format !== 1 && format !== 3) throw new WavError(`unsupported encoding: format ${format}${FORMAT_NAMES[format] ? ` (${FORMAT_NAMES[format]})` : ''} (supported: PCM and IEEE float)`);
  if (channels === 0) throw new WavError('zero channels');
  if (rate === 0) throw new WavError('sample rate 0');
  if (bits === 0) throw new WavError('0 bits per sample');
  if (blockAlign === 0 || blockAlign % channels) throw new WavError(`block align ${blockAlign} does not fit ${channels} channels`);
  if (byteRate !== rate * blockAlign) throw new WavError(`header is invalid: ${byteRate} bytes per second is not the sample rate ${rate} times the block align ${blockAlign}`);
  const width = blockAlign / channels;
  if (width < Math.ceil(bits / 8) || width > 8) throw new WavError(`${bits} bits per sample do not fit a block align of ${blockAlign} for ${channels} channels`);
  const float = format === 3;
  if (float && width !== 4 && width !== 8) throw new WavError(`unsupported encoding: float with ${bits} bits (supported: 32, 64)`);
  return { float, channels, rate, bits, blockAlign, width };
}

function toMono(dv: DataView, start: number, n: number, f: Format, le: boolean): Float32Array {
  const out = new Float32Array(n);
  const w = f.width;
  let read: (o: number) => number;
  if (f.float) read = w === 4 ? (o) => dv.getFloat32(o, le) : (o) => dv.getFloat64(o, le);
  else if (w === 1) read = (o) => (dv.getUint8(o) - 128) / 128; // 8-bit PCM is unsigned
  else if (w === 2) read = (o) => dv.getInt16(o, le) / 32768;
  else if (w === 4) read = (o) => dv.getInt32(o, le) / 2147483648;
  else {
    // 3, 5, 6, 7 or 8 bytes: signed, scaled by the container (as scipy left-justifies them).
    const scale = 2 ** (8 * w - 1);
    read = (o) => {
      let v = le ? dv.getInt8(o + w - 1) : dv.getInt8(o);
      for (let i = 1; i < w; i++) v = v * 256 + dv.getUint8(le ? o + w - 1 - i : o + i);
      return v / scale;
    };
  }
  if (f.channels === 1 && !f.float && w === 2 && le) {
    // The common case, without the per-sample closure.
    for (let i = 0, o = start; i < n; i++, o += 2) out[i] = dv.getInt16(o, true) / 32768;
    return out;
  }
  const inv = 1 / f.channels;
  for (let i = 0, o = start; i < n; i++, o += f.blockAlign) {
    let s = 0;
    for (let c = 0; c < f.channels; c++) s += read(o + c * w);
    out[i] = s * inv;
  }
  return out;
}

function header(dataBytes: number, sampleRate: number, channels: number, format: 1 | 3, bits: number): { buf: Uint8Array; dv: DataView } {
  const buf = new Uint8Array(44 + dataBytes);
  const dv = new DataView(buf.buffer);
  const put = (o: number, s: string) => [...s].forEach((ch, i) => (buf[o + i] = ch.charCodeAt(0)));
  const block = channels * (bits / 8);
  put(0, 'RIFF');
  dv.setUint32(4, 36 + dataBytes, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, format, true);
  dv.setUint16(22, channels, true);
  dv.setUint32(24, sampleRate, true);
  dv.setUint32(28, sampleRate * block, true);
  dv.setUint16(32, block, true);
  dv.setUint16(34, bits, true);
  put(36, 'data');
  dv.setUint32(40, dataBytes, true);
  return { buf, dv };
}

/** 16-bit PCM WAV of mono or interleaved samples in [-1, 1] (clipped). */
export function encodeWav16(samples: Float32Array, sampleRate: number, channels = 1): Uint8Array {
  const { buf, dv } = header(samples.length * 2, sampleRate, channels, 1, 16);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]!));
    dv.setInt16(44 + 2 * i, Math.round(v * 32767), true);
  }
  return buf;
}

/** 32-bit float WAV: every value kept as it is (above full scale included). */
export function encodeWavFloat32(samples: Float32Array, sampleRate: number, channels = 1): Uint8Array {
  const { buf, dv } = header(samples.length * 4, sampleRate, channels, 3, 32);
  for (let i = 0; i < samples.length; i++) dv.setFloat32(44 + 4 * i, samples[i]!, true);
  return buf;
}
