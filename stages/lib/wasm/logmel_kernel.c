// Log-mel frames of one clip, in WebAssembly, sharing the memory of PFFFT's module
// (@echogarden/pffft-wasm) and calling its transform: framing with reflection padding and the
// window, PFFFT's ordered real FFT, power, the slaney filterbank by bin (each bin feeds at most two
// neighbouring bands) and 10 log10 via a float32 bit-level logarithm. Freestanding: no libc, no
// data segment and no stack memory, so it can live in another module's memory (the caller
// allocates every buffer there). Built by build.sh into logmel_kernel.wasm (committed).

typedef unsigned int u32;

__attribute__((import_module("env"), import_name("fft")))
extern void pffft_transform_ordered(void *setup, const float *in, float *out, float *work, int direction);

static inline float fast_ln(float x) {
  u32 bits = __builtin_bit_cast(u32, x);
  int e = (int)((bits >> 23) & 255) - 127;
  float m = __builtin_bit_cast(float, (bits & 0x7fffffu) | 0x3f800000u);
  float u = (m - 1.0f) / (m + 1.0f);
  float u2 = u * u;
  return (float)e * 0.6931471805599453f + 2.0f * u * (1.0f + u2 * (1.0f / 3 + u2 * (1.0f / 5 + u2 * (1.0f / 7 + u2 / 9))));
}

// Computes frames x n_mels log-mel values of sig[0..n) into out.
// fin, fout, work: PFFFT buffers of n_fft floats (16-byte aligned); bands: n_mels + 2 floats.
__attribute__((export_name("logmel_clip")))
void logmel_clip(const float *sig, int n, int n_fft, int hop, const float *win, void *setup,
                 float *fin, float *fout, float *work, const int *band_of, const float *w_lo,
                 const float *w_hi, int bin_lo, int bin_hi, float *bands, int n_mels, float amin,
                 float *out) {
  const int half = n_fft / 2;
  const int frames = 1 + n / hop;
  const float db_per_neper = 4.342944819032518f;
  for (int t = 0; t < frames; t++) {
    const int p0 = t * hop - half;
    if (p0 >= 0 && p0 + n_fft <= n) {
      const float *s = sig + p0;
      for (int i = 0; i < n_fft; i++) fin[i] = s[i] * win[i];
    } else {
      for (int i = 0; i < n_fft; i++) {
        int j = p0 + i;
        if (j < 0) j = -j;
        else if (j >= n) j = 2 * (n - 1) - j;
        fin[i] = sig[j] * win[i];
      }
    }
    pffft_transform_ordered(setup, fin, fout, work, 0);
    for (int m = 0; m < n_mels + 2; m++) bands[m] = 0.0f;
    // Ordered output: [re0, re(N/2), re1, im1, re2, im2, ...].
    for (int k = bin_lo; k < bin_hi; k++) {
      float p;
      if (k == 0) p = fout[0] * fout[0];
      else if (k == half) p = fout[1] * fout[1];
      else {
        float re = fout[2 * k], im = fout[2 * k + 1];
        p = re * re + im * im;
      }
      const int b = band_of[k];
      bands[b] += w_lo[k] * p;
      bands[b + 1] += w_hi[k] * p;
    }
    float *row = out + t * n_mels;
    for (int m = 0; m < n_mels; m++) {
      float v = bands[m + 1];
      row[m] = db_per_neper * fast_ln(v > amin ? v : amin);
    }
  }
}
