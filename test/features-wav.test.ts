// WAV decoding: 16/24/32-bit PCM and 32-bit float, plain and WAVE_FORMAT_EXTENSIBLE, any channel count.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeWav, encodeWav16, WavError } from '../stages/lib/wav.ts';

/** A WAV of interleaved samples in the given encoding, written byte by byte (independent of the decoder). */
function wav(samples: number[], channels: number, bits: number, float: boolean, extensible = false): Uint8Array {
  const bytes = bits / 8;
  const fmtSize = extensible ? 40 : 16;
  const data = samples.length * bytes;
  const buf = new Uint8Array(12 + 8 + fmtSize + 8 + data);
  const dv = new DataView(buf.buffer);
  const put = (o: number, s: string) => [...s].forEach((c, i) => (buf[o + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  dv.setUint32(4, buf.length - 8, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, fmtSize, true);
  const code = float ? 3 : 1;
  dv.setUint16(20, extensible ? 0xfffe : code, true);
  dv.setUint16(22, channels, true);
  dv.setUint32(24, 16000, true);
  dv.setUint32(28, 16000 * channels * bytes, true);
  dv.setUint16(32, channels * bytes, true);
  dv.setUint16(34, bits, true);
  if (extensible) {
    dv.setUint16(36, 22, true);
    dv.setUint16(38, bits, true);
    dv.setUint16(44, code, true); // sub-format GUID starts with the format code
  }
  const d = 20 + fmtSize;
  put(d, 'data');
  dv.setUint32(d + 4, data, true);
  samples.forEach((v, i) => {
    const o = d + 8 + i * bytes;
    if (float) dv.setFloat32(o, v, true);
    else if (bits === 8) buf[o] = Math.round(v * 127) + 128;
    else if (bits === 16) dv.setInt16(o, Math.round(v * 32767), true);
    else if (bits === 32) dv.setInt32(o, Math.round(v * 2147483647), true);
    else {
      const x = Math.round(v * 8388607) & 0xffffff;
      buf[o] = x & 255;
      buf[o + 1] = (x >> 8) & 255;
      buf[o + 2] = (x >> 16) & 255;
    }
  });
  return buf;
}

const SIGNAL = [0, 0.5, -0.5, 0.25, -1, 0.999];

for (const [bits, float, tol] of [[16, false, 1e-4], [24, false, 1e-6], [32, false, 1e-8], [32, true, 0]] as const) {
  for (const extensible of [false, true]) {
    test(`decodes ${float ? 'float' : 'PCM'} ${bits}-bit${extensible ? ' (extensible)' : ''}, mono and stereo`, () => {
      const mono = decodeWav(wav(SIGNAL, 1, bits, float, extensible));
      assert.equal(mono.sampleRate, 16000);
      assert.equal(mono.samples.length, SIGNAL.length);
      SIGNAL.forEach((v, i) => assert.ok(Math.abs(mono.samples[i]! - v) <= tol + 1e-7, `${bits}-bit sample ${i}: ${mono.samples[i]} vs ${v}`));
      // Stereo: left = signal, right = 0 -> mono = signal / 2.
      const stereo = decodeWav(wav(SIGNAL.flatMap((v) => [v, 0]), 2, bits, float, extensible));
      assert.equal(stereo.channels, 2);
      SIGNAL.forEach((v, i) => assert.ok(Math.abs(stereo.samples[i]! - v / 2) <= tol + 1e-7, "Math.abs(stereo.samples[i]! - v / 2) <= tol + 1e-7"));
    });
  }
}

test('round trip through the 16-bit encoder, and clear errors for what it cannot read', () => {
  const x = Float32Array.from(SIGNAL);
  const back = decodeWav(encodeWav16(x, 22050));
  assert.equal(back.sampleRate, 22050);
  x.forEach((v, i) => assert.ok(Math.abs(back.samples[i]! - v) < 1e-4, "Math.abs(back.samples[i]! - v) < 1e-4"));
  assert.throws(() => decodeWav(new Uint8Array([1, 2, 3])), WavError);
  // 8-bit PCM is unsigned, scaled by 128.
  const u8 = decodeWav(wav(SIGNAL, 1, 8, false));
  SIGNAL.forEach((v, i) => assert.ok(Math.abs(u8.samples[i]! - v) <= 1 / 128 + 1e-7, `8-bit sample ${i}`));
  // A data chunk cut short is read as far as it goes, and said.
  const cut = decodeWav(wav(SIGNAL, 1, 16, false).slice(0, 50));
  assert.equal(cut.samples.length, 3);
  assert.match(cut.warnings.join(), /truncated: the data chunk declares \d+ bytes, the file holds 6/);
});
