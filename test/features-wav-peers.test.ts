// The WAV reader against scipy.io.wavfile on scipy's own test files (test/fixtures/wav-peers,
// expected.json written by test/reference/wav_peers_reference.py): it reads what scipy reads, to
// within float32 rounding, and refuses what scipy refuses; plus the streamed and malformed headers
// that no file there covers.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeWav, encodeWav16, encodeWavFloat32, WavError } from '../stages/lib/wav.ts';

const DIR = fileURLToPath(new URL('./fixtures/wav-peers/', import.meta.url));
type Expected = { ok: true; rate: number; channels: number; mono: number[] } | { ok: false; error: string };
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, Expected>;

test('every file of scipy\'s WAV test suite: read as scipy reads it (within 1e-6), or refused as scipy refuses it', () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.wav'));
  assert.equal(files.length, Object.keys(expected).length);
  let read = 0;
  for (const f of files) {
    const want = expected[f]!;
    const bytes = readFileSync(join(DIR, f));
    if (!want.ok) {
      assert.throws(() => decodeWav(bytes), WavError, `${f}: scipy refuses it (${want.error})`);
      continue;
    }
    const got = decodeWav(bytes);
    assert.equal(got.sampleRate, want.rate, f);
    assert.equal(got.channels, want.channels, f);
    assert.equal(got.samples.length, want.mono.length, f);
    want.mono.forEach((v, i) => assert.ok(Math.abs(got.samples[i]! - v) <= 1e-6 * Math.max(1, Math.abs(v)), `${f} sample ${i}: ${got.samples[i]} vs ${v}`));
    read++;
  }
  assert.ok(read >= 15, `most of the suite is readable (${read})`);
});

test('a streamed WAV (sizes 0xFFFFFFFF, as ffmpeg writes to a pipe) reads to the end of the file', () => {
  const x = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i / 5) * 0.5);
  const wav = encodeWav16(x, 16000);
  const dv = new DataView(wav.buffer);
  dv.setUint32(4, 0xffffffff, true);
  dv.setUint32(40, 0xffffffff, true);
  const got = decodeWav(wav);
  assert.equal(got.samples.length, 100);
  assert.deepEqual(got.warnings, []);
  x.forEach((v, i) => assert.ok(Math.abs(got.samples[i]! - v) < 1e-4, "Math.abs(got.samples[i]! - v) < 1e-4"));
});

test('malformed headers are named errors: 0 bits, sample rate 0, zero channels, inconsistent rates', () => {
  const base = () => encodeWav16(new Float32Array(10), 16000);
  const hurt = (o: number, v: number, size: 16 | 32) => {
    const w = base();
    const dv = new DataView(w.buffer);
    if (size === 16) dv.setUint16(o, v, true);
    else dv.setUint32(o, v, true);
    return w;
  };
  assert.throws(() => decodeWav(hurt(34, 0, 16)), /0 bits per sample/);
  assert.throws(() => decodeWav(hurt(24, 0, 32)), /sample rate 0/);
  assert.throws(() => decodeWav(hurt(22, 0, 16)), /zero channels/);
  assert.throws(() => decodeWav(hurt(28, 12345, 32)), /header is invalid: 12345 bytes per second/);
  assert.throws(() => decodeWav(hurt(20, 7, 16)), /unsupported encoding: format 7 \(mu-law\)/);
});

test('float WAVs keep values above full scale; the float encoder round-trips exactly', () => {
  const x = Float32Array.from([0, 1.5, -2.25, 0.125, Number.NaN]);
  const got = decodeWav(encodeWavFloat32(x, 16000));
  assert.equal(got.format, 'float32');
  assert.deepEqual([...got.samples.slice(0, 4)], [0, 1.5, -2.25, 0.125]);
  assert.ok(Number.isNaN(got.samples[4]), "Number.isNaN(got.samples[4])");
});

/** A WAV assembled from chunks (id, body), each padded to an even size as RIFF requires. */
function riff(chunks: Array<[string, Uint8Array]>, form = 'WAVE'): Uint8Array {
  const parts = chunks.map(([id, body]) => {
    const c = new Uint8Array(8 + body.length + (body.length & 1));
    c.set([...id].map((ch) => ch.charCodeAt(0)));
    new DataView(c.buffer).setUint32(4, body.length, true);
    c.set(body, 8);
    return c;
  });
  const total = 12 + parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  out.set([...'RIFF'].map((ch) => ch.charCodeAt(0)));
  new DataView(out.buffer).setUint32(4, total - 8, true);
  out.set([...form].map((ch) => ch.charCodeAt(0)), 8);
  let o = 12;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function fmt16(rate = 8000, channels = 1): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, 1, true);
  dv.setUint16(2, channels, true);
  dv.setUint32(4, rate, true);
  dv.setUint32(8, rate * 2 * channels, true);
  dv.setUint16(12, 2 * channels, true);
  dv.setUint16(14, 16, true);
  return b;
}

test('chunk walking: odd-sized chunks are padded, an empty data chunk at the very end is fine, and each structural fault is named', () => {
  const pcm = new Uint8Array(new Int16Array([16384, -16384, 8192]).buffer);
  const withList = decodeWav(riff([['fmt ', fmt16()], ['LIST', new Uint8Array([1, 2, 3])], ['data', pcm]]));
  assert.deepEqual([...withList.samples], [0.5, -0.5, 0.25]);
  assert.deepEqual(withList.warnings, []);
  const empty = decodeWav(riff([['fmt ', fmt16()], ['data', new Uint8Array(0)]]));
  assert.equal(empty.samples.length, 0);
  assert.throws(() => decodeWav(riff([['data', pcm], ['fmt ', fmt16()]])), /data chunk before fmt chunk/);
  assert.throws(() => decodeWav(riff([['fmt ', fmt16()], ['LIST', new Uint8Array(4)]])), /^WavError: no data chunk$|no data chunk/);
  assert.throws(() => decodeWav(riff([['LIST', new Uint8Array(4)]])), /no fmt chunk/);
  assert.throws(() => decodeWav(riff([['fmt ', fmt16()], ['data', pcm]], 'AVI ')), /not a RIFF\/WAVE file/);
  assert.throws(() => decodeWav(new TextEncoder().encode('RIFF\0\0\0\0WAV')), /not a RIFF\/WAVE file/);
  assert.throws(() => decodeWav(new TextEncoder().encode('FORM\0\0\0\0WAVE')), /not a RIFF\/WAVE file/);
  const cut = riff([['fmt ', fmt16()]]);
  const partial = new Uint8Array(cut.length + 5);
  partial.set(cut);
  partial.set([...'data'].map((c) => c.charCodeAt(0)), cut.length);
  assert.throws(() => decodeWav(partial), /incomplete chunk header at byte 36/);
  // Every reader-unsupported encoding is named.
  for (const [code, name] of [[2, 'ADPCM'], [6, 'A-law'], [7, 'mu-law'], [0x11, 'IMA ADPCM'], [0x55, 'MP3']] as const) {
    const f = fmt16();
    new DataView(f.buffer).setUint16(0, code, true);
    assert.throws(() => decodeWav(riff([['fmt ', f], ['data', pcm]])), new RegExp(`format ${code} \\(${name}\\)`));
  }
});

test('well-formed files read without warnings; only a cut-short data chunk warns', () => {
  for (const [f, want] of Object.entries(expected)) {
    if (!want.ok) continue;
    const got = decodeWav(readFileSync(join(DIR, f)));
    if (f.includes('early-eof')) assert.match(got.warnings.join(), /truncated/, f);
    else assert.deepEqual(got.warnings, [], f);
  }
});

test('fmt headers that cannot describe the audio are named: short, cut, block align, sample width, float width', () => {
  const pcm = new Uint8Array(8);
  const withFmt = (f: Uint8Array) => riff([['fmt ', f], ['data', pcm]]);
  assert.throws(() => decodeWav(withFmt(fmt16().slice(0, 14))), /truncated fmt chunk/);
  const cutFmt = riff([['fmt ', fmt16()]]).slice(0, 30);
  assert.throws(() => decodeWav(cutFmt), /truncated fmt chunk/);
  const ext = new Uint8Array(24);
  ext.set(fmt16());
  new DataView(ext.buffer).setUint16(0, 0xfffe, true);
  assert.throws(() => decodeWav(withFmt(ext)), /WAVE_FORMAT_EXTENSIBLE header too short/);
  const set = (o: number, v: number, bits: 16 | 32 = 16) => {
    const f = fmt16(8000, 2);
    const dv = new DataView(f.buffer);
    if (bits === 16) dv.setUint16(o, v, true);
    else dv.setUint32(o, v, true);
    return f;
  };
  const odd = set(12, 3); // block align 3 for 2 channels
  new DataView(odd.buffer).setUint32(8, 8000 * 3, true);
  assert.throws(() => decodeWav(withFmt(odd)), /block align 3 does not fit 2 channels/);
  const zeroAlign = set(12, 0);
  new DataView(zeroAlign.buffer).setUint32(8, 0, true);
  assert.throws(() => decodeWav(withFmt(zeroAlign)), /block align 0 does not fit 2 channels/);
  assert.throws(() => decodeWav(withFmt(set(14, 24))), /24 bits per sample do not fit a block align of 4 for 2 channels/);
  const wide = set(12, 18);
  new DataView(wide.buffer).setUint32(8, 8000 * 18, true);
  new DataView(wide.buffer).setUint16(14, 72, true);
  assert.throws(() => decodeWav(withFmt(wide)), /72 bits per sample do not fit/);
  const f16 = set(0, 3); // IEEE float in 2-byte samples
  assert.throws(() => decodeWav(withFmt(f16)), /unsupported encoding: float with 16 bits/);
});

test('each structural fault by its exact message, at the edges: a header alone, a chunk header cut after fmt, less than a frame, an fmt ending the file, an unknown format', () => {
  const msg = (b: Uint8Array) => {
    try {
      decodeWav(b);
      return 'read';
    } catch (e) {
      assert.ok(e instanceof WavError, String(e));
      return e.message;
    }
  };
  assert.equal(msg(riff([])), 'no fmt chunk', 'RIFF/WAVE and nothing else (12 bytes)');
  const withFmt = riff([['fmt ', fmt16()]]);
  assert.equal(msg(withFmt), 'no data chunk', 'an fmt chunk that ends the file');
  const tail = (b: Uint8Array, n: number) => {
    const out = new Uint8Array(b.length + n);
    out.set(b);
    return out;
  };
  assert.equal(msg(tail(withFmt, 5)), 'incomplete chunk header at byte 36 (no data chunk before it)');
  assert.equal(msg(tail(riff([]), 5)), 'incomplete chunk header at byte 12');
  assert.equal(msg(riff([['fmt ', fmt16(8000, 2)], ['data', new Uint8Array(2)]])), 'the data chunk holds 2 bytes, less than one frame of 4');
  const unknown = fmt16();
  new DataView(unknown.buffer).setUint16(0, 99, true);
  assert.equal(msg(riff([['fmt ', unknown], ['data', new Uint8Array(2)]])), 'unsupported encoding: format 99 (supported: PCM and IEEE float)');
  const rate0 = fmt16();
  new DataView(rate0.buffer).setUint32(4, 0, true);
  new DataView(rate0.buffer).setUint32(8, 0, true);
  assert.equal(msg(riff([['fmt ', rate0], ['data', new Uint8Array(2)]])), 'sample rate 0');
  // WAVE_FORMAT_EXTENSIBLE: 40 bytes of fmt, complete and ending the file, or cut by the end of the file.
  const ext = new Uint8Array(40);
  ext.set(fmt16());
  new DataView(ext.buffer).setUint16(0, 0xfffe, true);
  new DataView(ext.buffer).setUint16(24, 1, true);
  const extFile = riff([['fmt ', ext]]);
  assert.equal(msg(extFile), 'no data chunk');
  assert.equal(msg(extFile.slice(0, extFile.length - 10)), 'WAVE_FORMAT_EXTENSIBLE header too short');
});

test('the encoders write RIFF and data sizes as the format defines them (little-endian), so a strict reader finds no fault', () => {
  for (const [enc, format] of [[encodeWav16, 'pcm16'], [encodeWavFloat32, 'float32']] as const) {
    const b = enc(Float32Array.from([0.5, -0.25, 0.125]), 16000);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    assert.equal(dv.getUint32(4, true), b.length - 8, `${format}: RIFF size`);
    assert.equal(dv.getUint32(40, true), b.length - 44, `${format}: data size`);
    const back = decodeWav(b);
    assert.equal(back.format, format);
    assert.deepEqual(back.warnings, []);
  }
});
