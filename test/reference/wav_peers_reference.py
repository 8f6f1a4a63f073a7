"""What scipy.io.wavfile (Debian's python3-scipy 1.10) makes of its own WAV test files, copied into
test/fixtures/wav-peers/ (BSD-licensed, from scipy/io/tests/data). For each file: refused (and why),
or its sample rate, channel count and every sample as mono float, written to expected.json.

Integers are scaled by their container (uint8: (x - 128) / 128; signed n-byte: x / 2^(8n - 1)),
floats kept, channels averaged: the same mono float signal the pipeline's WAV reader returns.

Run: /usr/bin/python3 test/reference/wav_peers_reference.py
"""
import json
import pathlib
import warnings

import numpy as np
from scipy.io import wavfile

here = pathlib.Path(__file__).resolve().parent.parent / 'fixtures' / 'wav-peers'
out = {}
for f in sorted(here.glob('*.wav')):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            rate, data = wavfile.read(f)
    except Exception as e:  # noqa: BLE001 - any refusal is a refusal
        out[f.name] = {'ok': False, 'error': f'{type(e).__name__}: {e}'}
        continue
    data = np.asarray(data)
    if data.dtype == np.uint8:
        x = (data.astype(np.float64) - 128) / 128
    elif data.dtype.kind == 'i':
        x = data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))
    else:
        x = data.astype(np.float64)
    channels = 1 if x.ndim == 1 else x.shape[1]
    mono = x if x.ndim == 1 else x.mean(axis=1)
    out[f.name] = {'ok': True, 'rate': int(rate), 'channels': int(channels), 'dtype': str(data.dtype), 'mono': [float(v) for v in mono]}
(here / 'expected.json').write_text(json.dumps(out, indent=1) + '\n')
print(json.dumps({k: (v['ok'], v.get('dtype') or v.get('error')) for k, v in out.items()}, indent=1))
