"""Float64 reference values for repdrift's metrics (tests/integration/metrics_golden.rs).

    /tmp/refenv/bin/python tests/reference/make_metrics_reference.py     # numpy + safetensors

Writes metrics_inputs.safetensors (each case's X and Y as float32, the exact inputs the Rust
tests read) and metrics_reference.json (values computed here in float64 from those float32
values). The measures are computed from their textbook definitions, in sample (Gram) space
where one exists, independently of repdrift's feature-space accumulators:
  linear_cka     <Kc, Lc>_F / (|Kc|_F |Lc|_F), Kc = Xc Xc^T, Lc = Yc Yc^T (Xc, Yc column-centred)
  debiased_cka   Song et al. 2012 unbiased HSIC on Kc, Lc with zeroed diagonals,
                 HSIC_u(K,L) / sqrt(HSIC_u(K,K) HSIC_u(L,L)); null when a normaliser is <= 0 or n < 4
  cosine         mean and population std of 1 - cos(x_i, y_i) (equal widths only)
  procrustes     2 - 2 * nuclear_norm(Xn^T Yn), Xn = Xc / |Xc|_F, Yn = Yc / |Yc|_F
  norm_ratio     mean |y_i| / |x_i|
  knn_overlap    mean over i of |kNN_X(i) & kNN_Y(i)| / k, cosine similarity, self excluded, k = 10
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261123)


def lowrank(n, d, rank, outlier_scale=40.0):
    z = rng.normal(size=(n, rank))
    a = rng.normal(size=(rank, d)) * (0.7 ** np.arange(d))[None, :]  # anisotropic
    x = z @ a + 0.05 * rng.normal(size=(n, d))
    x[:, 0] = outlier_scale + 5.0 * x[:, 0]  # outlier dimension: large mean and scale
    return x


def cases():
    out = {}
    out["rand_n5"] = (rng.normal(size=(5, 4)), rng.normal(size=(5, 3)))
    x = rng.normal(size=(50, 80))
    out["rand_n50_d_gt_n"] = (x, x[:, :60] @ rng.normal(size=(60, 60)) + rng.normal(size=(50, 60)))
    x = lowrank(500, 64, 6)
    out["lowrank_outlier_n500"] = (x, np.tanh(x[:, :48] / 10.0) + 0.2 * rng.normal(size=(500, 48)))
    x = rng.normal(size=(5000, 24))
    out["rand_n5000"] = (x, x[:, :16] + 0.5 * rng.normal(size=(5000, 16)))
    x = lowrank(1000, 48, 5)
    out["lowrank_same_d_n1000"] = (x, x + 0.3 * rng.normal(size=(1000, 48)) * x.std(0))
    x = rng.normal(size=(300, 32))
    q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    out["rotated_scaled_n300"] = (x, 3.0 * x @ q)
    x = rng.normal(size=(8, 6))
    out["n8_same_d"] = (x, x + 0.1 * rng.normal(size=(8, 6)))
    return {k: (a.astype(np.float32), b.astype(np.float32)) for k, (a, b) in out.items()}


def hsic_u(k, l):
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    return (np.sum(k * l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def knn(x, k):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T
    np.fill_diagonal(s, -np.inf)
    return [set(np.argsort(-row, kind="stable")[:k]) for row in s]


def measures(x32, y32):
    x = x32.astype(np.float64)
    y = y32.astype(np.float64)
    n = x.shape[0]
    xc = x - x.mean(0)
    yc = y - y.mean(0)
    kc = xc @ xc.T
    lc = yc @ yc.T
    r = {"n": n}
    r["linear_cka"] = float(np.sum(kc * lc) / (np.linalg.norm(kc) * np.linalg.norm(lc)))
    if n >= 4:
        hxy, hxx, hyy = hsic_u(kc, lc), hsic_u(kc, kc), hsic_u(lc, lc)
        r["debiased_cka"] = float(hxy / np.sqrt(hxx * hyy)) if hxx > 0 and hyy > 0 else None
    else:
        r["debiased_cka"] = None
    if x.shape[1] == y.shape[1]:
        d = 1.0 - np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
        r["cosine_distance"] = float(d.mean())
        r["cosine_distance_std"] = float(d.std())
    else:
        r["cosine_distance"] = None
        r["cosine_distance_std"] = None
    xn = xc / np.linalg.norm(xc)
    yn = yc / np.linalg.norm(yc)
    r["procrustes_distance"] = float(2.0 - 2.0 * np.linalg.svd(xn.T @ yn, compute_uv=False).sum())
    r["norm_ratio"] = float(np.mean(np.linalg.norm(y, axis=1) / np.linalg.norm(x, axis=1)))
    k = 10
    if n > k and n <= 2000:
        a, b = knn(x, k), knn(y, k)
        r["knn_overlap"] = float(np.mean([len(s & t) / k for s, t in zip(a, b)]))
    else:
        r["knn_overlap"] = None
    return r


def main():
    cs = cases()
    tensors = {}
    ref = {"source": "tests/reference/make_metrics_reference.py (numpy %s, float64)" % np.__version__,
           "cases": {}}
    for name, (x, y) in cs.items():
        tensors[f"{name}.x"] = x
        tensors[f"{name}.y"] = y
        ref["cases"][name] = measures(x, y)
    save_file(tensors, os.path.join(HERE, "metrics_inputs.safetensors"))
    with open(os.path.join(HERE, "metrics_reference.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
