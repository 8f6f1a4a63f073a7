// WAV (RIFF) decoding to float32 and 16-bit encoding. Reads PCM 16/24/32-bit and IEEE float 32
// (also inside WAVE_FORMAT_EXTENSIBLE), any channel count; channels are averaged to mono.

export interface DecodedWav {
  sampleRate: number;
  channels: number;
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
  format: string;
}

export class WavError extends Error {}

export function decodeWav(buf: Uint8Array): DecodedWav {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag = (o: number) => String.fromCharCode(buf[o]!, buf[o + 1]!, buf[o + 2]!, buf[o + 3]!);
  if (buf.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new WavError('not a RIFF/WAVE file');
  let fmt: { format: number; channels: number; rate: number; bits: number } | undefined;
  let off = 12;
  while (off + 8 <= buf.length) {
    const id = tag(off);
    const size = dv.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw new WavError('truncated fmt chunk');
      let format = dv.getUint16(body, true);
      if (format === 0xfffe && size >= 40) format = dv.getUint16(body + 24, true); // extensible: sub-format GUID
      fmt = { format, channels: dv.getUint16(body + 2, true), rate: dv.getUint32(body + 4, true), bits: dv.getUint16(body + 14, true) };
    } else if (id === 'data') {
      if (!fmt) throw new WavError('data chunk before fmt chunk');
      if (body + size > buf.length) throw new WavError(`truncated: the data chunk declares ${size} bytes, the file holds ${buf.length - body}`);
      return { sampleRate: fmt.rate, channels: fmt.channels, samples: toMono(dv, body, size, fmt), format: `${fmt.format === 3 ? 'float' : 'pcm'}${fmt.bits}` };
    }
    off = body + size + (size & 1);
  }
  throw new WavError(fmt ? 'no data chunk' : 'no fmt chunk');
}

function toMono(dv: DataView, start: number, size: number, f: { format: number; channels: number; bits: number }): Float32Array {
  const bytes = f.bits / 8;
  if (f.channels < 1) throw new WavError('zero channels');
  const frame = bytes * f.channels;
  const n = Math.floor(size / frame);
  const out = new Float32Array(n);
  const inv = 1 / f.channels;
  let read: (o: number) => number;
  if (f.format === 1 && f.bits === 16) read = (o) => dv.getInt16(o, true) / 32768;
  else if (f.format === 1 && f.bits === 24) read = (o) => ((dv.getUint8(o) | (dv.getUint8(o + 1) << 8) | (dv.getInt8(o + 2) << 16)) / 8388608);
  else if (f.format === 1 && f.bits === 32) read = (o) => dv.getInt32(o, true) / 2147483648;
  else if (f.format === 3 && f.bits === 32) read = (o) => dv.getFloat32(o, true);
  else throw new WavError(`unsupported encoding: format ${f.format} with ${f.bits} bits (supported: PCM 16/24/32-bit, float 32-bit)`);
  if (f.channels === 1 && f.format === 1 && f.bits === 16) {
    // The common case, without the per-sample closure.
    for (let i = 0, o = start; i < n; i++, o += 2) out[i] = dv.getInt16(o, true) / 32768;
    return out;
  }
  for (let i = 0, o = start; i < n; i++, o += frame) {
    let s = 0;
    for (let c = 0; c < f.channels; c++) s += read(o + c * bytes);
    out[i] = s * inv;
  }
  return out;
}

/** 16-bit PCM WAV of mono or interleaved samples in [-1, 1] (clipped). */
export function encodeWav16(samples: Float32Array, sampleRate: number, channels = 1): Uint8Array {
  const data = samples.length * 2;
  const buf = new Uint8Array(44 + data);
  const dv = new DataView(buf.buffer);
  const put = (o: number, s: string) => [...s].forEach((ch, i) => (buf[o + i] = ch.charCodeAt(0)));
  put(0, 'RIFF');
  dv.setUint32(4, 36 + data, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, 1, true);
  dv.setUint16(22, channels, true);
  dv.setUint32(24, sampleRate, true);
  dv.setUint32(28, sampleRate * channels * 2, true);
  dv.setUint16(32, channels * 2, true);
  dv.setUint16(34, 16, true);
  put(36, 'data');
  dv.setUint32(40, data, true);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]!));
    dv.setInt16(44 + 2 * i, Math.round(v * 32767), true);
  }
  return buf;
}
