"""scikit-learn reference for benches/probe.rs: 31 layers x 2,000 pairs x d = 576;
Bradley-Terry probe = LogisticRegression(fit_intercept=False) on [Z; -Z] with Z = D / rms(D);
5-fold CV over C in {0.001, 0.01, 0.1, 1} (folds over pairs) plus the final fit; 2 threads.

    python benches/reference/probe_sklearn.py
Fits the very matrices the Rust side saved (`cargo bench --bench side_by_side -- probe` or
`cargo bench --bench probe` first): target/bench-stores/probe_data.safetensors.
Prints one JSON line (seconds, mean in-distribution CV accuracy).
"""
import json
import os
import sys
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression

LAYERS, N, D = 31, 2000, 576
CS = [0.001, 0.01, 0.1, 1.0]


def fit(d, c):
    z = d / np.sqrt((d ** 2).mean(0))
    m = LogisticRegression(C=c, fit_intercept=False, max_iter=500)
    m.fit(np.vstack([z, -z]), np.r_[np.ones(len(z)), np.zeros(len(z))])
    return m.coef_[0] / np.sqrt((d ** 2).mean(0))


def cv(d):
    fold = np.empty(N, dtype=int)
    fold[np.random.default_rng(0).permutation(N)] = np.arange(N) * 5 // N
    best = (-1.0, None)
    for c in CS:
        s = np.empty(N)
        for f in range(5):
            w = fit(d[fold != f], c)
            s[fold == f] = d[fold == f] @ w
        acc = np.mean(s > 0)
        if acc > best[0]:
            best = (acc, c)
    fit(d, best[1])
    return best[0]


from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
saved = load_file(os.path.join(ROOT, "target", "bench-stores", "probe_data.safetensors"))
data = [saved[f"layer_{l:03d}"].astype(np.float64) for l in range(LAYERS)]
t0 = time.perf_counter()
accs = [cv(d) for d in data]
t = time.perf_counter() - t0
print(f"scikit-learn {sklearn.__version__}: {t:.1f} s for {LAYERS} layers; mean in-dist CV accuracy {np.mean(accs):.4f}",
      file=sys.stderr)
print(json.dumps({"seconds": t, "accuracy": float(np.mean(accs)),
                  "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__}}))
