"""NumPy reference for benches/compare.rs: 2 students x 31 layers, n = 4096, d = 576, float64;
linear CKA, debiased CKA, cosine distance (mean, std), orthogonal Procrustes, norm ratio.

    python benches/reference/compare_numpy.py [gram|feature|both] [--n 4096] [--students 2]

Two ways NumPy code computes these today:
  gram     sample space, as most CKA code does (Kornblith et al.'s notebook and its copies):
           n x n Gram matrices, centred, unbiased HSIC from the Gram form.
  feature  the same feature-space algebra repdrift uses (d x d cross products), in NumPy.
Data: random float32 (generated here; the timing does not depend on the values), each layer's
matrices already in memory (repdrift reads them from its store on disk inside the timing).
Prints one JSON line per kind: the wall time for all (student, layer) pairs.
"""
import argparse
import json
import sys
import time

import numpy as np

D, LAYERS = 576, 31
rng = np.random.default_rng(0)


def hsic_u(k, l):
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    kl1 = k.sum(1)
    ll1 = l.sum(1)
    return (np.sum(k * l) + kl1.sum() * ll1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1 @ ll1) / (n * (n - 3))


def gram(x, y):
    xc = x - x.mean(0)
    yc = y - y.mean(0)
    k = xc @ xc.T
    l = yc @ yc.T
    lin = np.sum(k * l) / (np.linalg.norm(k) * np.linalg.norm(l))
    deb = hsic_u(k, l) / np.sqrt(hsic_u(k, k) * hsic_u(l, l))
    return lin, deb


def feature(x, y):
    xc = x - x.mean(0)
    yc = y - y.mean(0)
    cxx = xc.T @ xc
    cyy = yc.T @ yc
    cyx = yc.T @ xc
    lin = np.sum(cyx * cyx) / (np.linalg.norm(cxx) * np.linalg.norm(cyy))
    n = x.shape[0]
    nx = np.sum(xc * xc, 1)
    ny = np.sum(yc * yc, 1)
    # unbiased HSIC in feature space (column-centred data, so the sums of rows vanish)
    def hu(trkl, sk, sl, okl):
        return (trkl + sk * sl / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * okl) / (n * (n - 3))
    xy = hu(np.sum(cyx * cyx) - nx @ ny, -nx.sum(), -ny.sum(), nx @ ny)
    xx = hu(np.sum(cxx * cxx) - nx @ nx, -nx.sum(), -nx.sum(), nx @ nx)
    yy = hu(np.sum(cyy * cyy) - ny @ ny, -ny.sum(), -ny.sum(), ny @ ny)
    return lin, xy / np.sqrt(xx * yy)


def common(x, y):
    cos = 1.0 - np.sum(x * y, 1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    xc = x - x.mean(0)
    yc = y - y.mean(0)
    proc = 2.0 - 2.0 * np.linalg.svd((xc / np.linalg.norm(xc)).T @ (yc / np.linalg.norm(yc)), compute_uv=False).sum()
    ratio = np.mean(np.linalg.norm(y, axis=1) / np.linalg.norm(x, axis=1))
    return cos.mean(), cos.std(), proc, ratio


def run(kind, n, students):
    base = [rng.standard_normal((n, D), dtype=np.float32) for _ in range(LAYERS)]
    studs = [[b + 0.5 * rng.standard_normal((n, D), dtype=np.float32) for b in base] for _ in range(students)]
    f = gram if kind == "gram" else feature
    t0 = time.perf_counter()
    for s in range(students):
        for l in range(LAYERS):
            x = base[l].astype(np.float64)
            y = studs[s][l].astype(np.float64)
            f(x, y)
            common(x, y)
    t = time.perf_counter() - t0
    print(f"numpy {np.__version__} {kind}: {t:.1f} s for {students * LAYERS} (student, layer) pairs "
          f"(n = {n}, d = {D}), {1000 * t / (students * LAYERS):.0f} ms per pair", file=sys.stderr)
    print(json.dumps({"seconds": t, "kind": kind, "n": n, "students": students, "layers": LAYERS,
                      "versions": {"numpy": np.__version__}}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", nargs="?", default="both", choices=["gram", "feature", "both"])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--students", type=int, default=2)
    a = ap.parse_args()
    for k in (["gram", "feature"] if a.kind == "both" else [a.kind]):
        run(k, a.n, a.students)
