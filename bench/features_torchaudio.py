#!/usr/bin/python3
"""torchaudio reference speed for bench/features.ts: log-mel (reference configuration) of every clip
listed on stdin (one float32 .raw path per line), one thread, compute only. Prints seconds of audio
per second."""
import sys, time
import numpy as np
import torch
import torchaudio

torch.set_num_threads(1)
mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=512, win_length=512, hop_length=160, f_min=50.0,
                                           f_max=8000.0, n_mels=64, power=2.0, center=True, pad_mode='reflect',
                                           norm='slaney', mel_scale='slaney')
clips = [torch.from_numpy(np.fromfile(p.strip(), dtype=np.float32))[None, :] for p in sys.stdin if p.strip()]
seconds = sum(c.shape[1] for c in clips) / 16000
for c in clips[:20]:
    10 * torch.log10(torch.clamp(mel(c), min=1e-10))  # warm-up
best = 0.0
for _ in range(3):
    t0 = time.perf_counter()
    for c in clips:
        10 * torch.log10(torch.clamp(mel(c), min=1e-10))
    best = max(best, seconds / (time.perf_counter() - t0))
print(best)
