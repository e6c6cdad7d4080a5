"""scikit-learn reference for repdrift's probes (tests/integration/probe.rs).

    /tmp/refenv/bin/python tests/reference/make_probe_reference.py   # numpy, scikit-learn, safetensors

Writes probe_inputs.safetensors (float64 inputs) and probe_reference.json: for fixed C,
  pairwise: Z = D / rms(D_train) per feature; LogisticRegression(C, fit_intercept=False) on
            [Z; -Z] -> [1; 0]; test accuracy = mean(s > 0) with s = Z_test w, AUC =
            roc_auc_score([1; 0], [s; -s]).
  label:    Z = (X - mean) / rms(X - mean) (train statistics); LogisticRegression(C) with
            intercept; test accuracy (s > 0 <=> 1) and roc_auc_score.
"""
import json
import os

import numpy as np
import sklearn
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def pairs(n, d, u, v, mu, nu):
    return mu * u[None, :] + nu * v[None, :] + rng.normal(size=(n, d)) * (0.5 + rng.random(d))[None, :]


def main():
    d = 30
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    v = rng.normal(size=d)
    v -= u * (u @ v)
    v /= np.linalg.norm(v)
    tr = pairs(400, d, u, v, 0.6, 1.0)
    te = pairs(400, d, u, v, 0.6, -0.5)
    # labelled examples: training and test sets from the same noisy linear rule
    w_true = rng.normal(size=10)
    xl = rng.normal(size=(300, 10)) + 0.5
    yl = (xl @ w_true + 0.8 * rng.normal(size=300) > 0.3).astype(np.float64)
    xt = rng.normal(size=(300, 10)) + 0.5
    yt = (xt @ w_true + 0.8 * rng.normal(size=300) > 0.3).astype(np.float64)
    ref = {"source": "tests/reference/make_probe_reference.py (scikit-learn %s)" % sklearn.__version__,
           "pairwise": {}, "label": {}}
    scale = 1.0 / np.sqrt((tr ** 2).mean(0))
    z, zt = tr * scale, te * scale
    for c in [0.01, 1.0]:
        m = LogisticRegression(C=c, fit_intercept=False, tol=1e-10, max_iter=10000)
        m.fit(np.vstack([z, -z]), np.r_[np.ones(len(z)), np.zeros(len(z))])
        s = zt @ m.coef_[0]
        ref["pairwise"][str(c)] = {
            "accuracy": float(np.mean(s > 0)),
            "auc": float(roc_auc_score(np.r_[np.ones(len(s)), np.zeros(len(s))], np.r_[s, -s])),
            "w": m.coef_[0].tolist(),
        }
    mean = xl.mean(0)
    sc = 1.0 / np.sqrt(((xl - mean) ** 2).mean(0))
    for c in [0.05, 1.0]:
        m = LogisticRegression(C=c, tol=1e-10, max_iter=10000)
        m.fit((xl - mean) * sc, yl)
        s = ((xt - mean) * sc) @ m.coef_[0] + m.intercept_[0]
        ref["label"][str(c)] = {
            "accuracy": float(np.mean((s > 0) == (yt > 0.5))),
            "auc": float(roc_auc_score(yt, s)),
        }
    save_file({"pair_train": tr, "pair_test": te, "label_train_x": xl, "label_train_y": yl,
               "label_test_x": xt, "label_test_y": yt}, os.path.join(HERE, "probe_inputs.safetensors"))
    with open(os.path.join(HERE, "probe_reference.json"), "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
