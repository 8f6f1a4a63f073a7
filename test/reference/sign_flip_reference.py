"""Reference values for stages/lib/stats.ts signFlipTest: SciPy's exact paired permutation test.

scipy.stats.permutation_test with permutation_type='samples' on (model, baseline) pairs permutes
within each pair, i.e. flips the sign of each paired difference; n_resamples=inf enumerates all
2^n assignments; the statistic is the mean difference, two-sided. Writes test/fixtures/sign-flip.json.
Run: python3 test/reference/sign_flip_reference.py  (Debian: python3-scipy)
"""
import json
import os

import numpy as np
from scipy import stats

cases = [
    [0.03, 0.02, 0.04],            # all positive, 3 seeds: p at its floor 2/8
    [0.03, -0.01, 0.02],           # mixed signs
    [0.010, 0.012, -0.004, 0.020, 0.007],
    [-0.05, -0.02, -0.03, -0.04, -0.01, -0.06],
    [0.0, 0.0, 0.0],               # no difference: every assignment ties, p = 1
]
out = []
for d in cases:
    base = np.linspace(0.7, 0.75, len(d))
    model = base + np.array(d)
    res = stats.permutation_test(
        (model, base), lambda x, y: np.mean(x - y), permutation_type='samples',
        n_resamples=np.inf, alternative='two-sided')
    out.append({'diffs': [float(m - b) for m, b in zip(model, base)], 'mean': float(np.mean(model - base)), 'p': float(res.pvalue)})

path = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'sign-flip.json')
with open(path, 'w') as f:
    json.dump({'scipy': __import__('scipy').__version__, 'cases': out}, f, indent=1)
print(json.dumps(out, indent=1))
