#!/usr/bin/python3
"""Reference log-mel spectrograms from torchaudio, for the parity test (test/features-logmel.test.ts).

Writes into test/fixtures/logmel/: short 16-bit WAV clips, the torchaudio log-mels of each computed
in float32 (<name>.npy) and in float64 (<name>.f64.npy, stored as float32), and cases.json naming
the configuration of each case. Run with Debian's
python3-torchaudio: /usr/bin/python3 test/reference/logmel_reference.py
(Float32 results can differ in the last ulp from CPU to CPU, about 1e-5 dB: the cases committed earlier
were kept as first written when the window-shorter-than-FFT cases were added.)
"""
import json
import math
import os
import struct
import wave

import numpy as np
import torch
import torchaudio

OUT = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'logmel')
REFERENCE = dict(sample_rate=16000, n_fft=512, win_length=512, hop_length=160, f_min=50.0, f_max=8000.0, n_mels=64)
CNN14_32K = dict(sample_rate=32000, n_fft=1024, win_length=1024, hop_length=320, f_min=50.0, f_max=14000.0, n_mels=64)
# A window shorter than the FFT (torch.stft centres it in n_fft): where it sits only shows when they differ;
# 401 also checks the rounding of the offset ((512 - 401) // 2 = 55 zeros before it).
SHORT400 = dict(REFERENCE, win_length=400)
SHORT401 = dict(REFERENCE, win_length=401)


def clip(rate, seconds, seed, kind):
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    if kind == 'sweep':
        f = 150 + 2500 * t / seconds
        x = 0.4 * np.sin(2 * math.pi * np.cumsum(f) / rate) * np.hanning(len(t))
    elif kind == 'burst':
        f0 = 220 * (1 + 0.2 * np.sin(2 * math.pi * 5 * t))
        x = sum(0.3 / k * np.sin(2 * math.pi * k * np.cumsum(f0) / rate) for k in range(1, 8))
        x = x * np.exp(-3 * t) + 0.02 * rng.standard_normal(len(t))
    else:
        x = 0.1 * rng.standard_normal(len(t))
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def write_wav(path, samples, rate):
    with wave.open(path, 'wb') as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def write_npy(path, a):
    np.save(path, a.astype(np.float32))


def logmel(samples, cfg, dtype):
    x = torch.from_numpy(samples.astype(np.float64) / 32768.0)[None, :].to(dtype)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg['sample_rate'], n_fft=cfg['n_fft'], win_length=cfg['win_length'], hop_length=cfg['hop_length'],
        f_min=cfg['f_min'], f_max=cfg['f_max'], n_mels=cfg['n_mels'], power=2.0, center=True, pad_mode='reflect',
        norm='slaney', mel_scale='slaney').to(dtype)
    return (10 * torch.log10(torch.clamp(mel(x), min=1e-10)))[0].T.numpy()  # frames x mels


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for name, cfg, seconds, seed, kind in [
        ('sweep16k', REFERENCE, 0.6, 1, 'sweep'),
        ('burst16k', REFERENCE, 0.83, 2, 'burst'),
        ('noise16k', REFERENCE, 0.5, 3, 'noise'),
        ('burst32k', CNN14_32K, 0.4, 4, 'burst'),
        ('burst16k-w400', SHORT400, 0.5, 5, 'burst'),
        ('sweep16k-w401', SHORT401, 0.45, 6, 'sweep'),
    ]:
        s = clip(cfg['sample_rate'], seconds, seed, kind)
        write_wav(os.path.join(OUT, f'{name}.wav'), s, cfg['sample_rate'])
        # float32: what torchaudio computes by default; float64: the exact values.
        ref = logmel(s, cfg, torch.float32)
        write_npy(os.path.join(OUT, f'{name}.npy'), ref)
        write_npy(os.path.join(OUT, f'{name}.f64.npy'), logmel(s, cfg, torch.float64))
        cases.append(dict(name=name, config=cfg, frames=int(ref.shape[0])))
    with open(os.path.join(OUT, 'cases.json'), 'w') as f:
        json.dump(dict(torchaudio=torchaudio.__version__, torch=torch.__version__, cases=cases), f, indent=1)
    print('wrote', len(cases), 'cases to', os.path.normpath(OUT))


if __name__ == '__main__':
    main()
