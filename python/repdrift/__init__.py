"""repdrift in Python: open activation stores written by ``repdrift capture`` as NumPy arrays,
read ``compare`` / ``probe`` / ``study`` results as pandas DataFrames, and compute repdrift's
drift measures (streamed in float64 by the Rust library) on your own arrays.

>>> import repdrift
>>> base, naive = repdrift.Store("runs/base"), repdrift.Store("runs/naive")
>>> cka = [repdrift.linear_cka(base.layer("resid_post", l, "chosen"),
...                            naive.layer("resid_post", l, "chosen")) for l in base.layers]
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ._native import NativeStore as _NativeStore
from ._native import RepdriftError
from ._native import __version__ as _native_version
from ._native import pair_metrics_f32 as _pm32
from ._native import pair_metrics_f64 as _pm64

__version__ = _native_version
__all__ = [
    "RepdriftError",
    "Store",
    "pair_metrics",
    "linear_cka",
    "debiased_cka",
    "cosine_distance",
    "procrustes_distance",
    "read_metrics",
    "read_probe",
    "read_study",
]

PathLike = Union[str, "os.PathLike[str]"]


class Store:
    """A finished activation store (the directory ``repdrift capture --out`` wrote).

    Every part file is checked against the sha256 its manifest records; an incomplete store
    or a shard (``capture --shard``) raises :class:`RepdriftError` saying what to do.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        self._native = _NativeStore(self.path)
        self.manifest: Dict[str, Any] = json.loads(self._native.manifest_json())

    @property
    def hooks(self) -> List[str]:
        """Hook points captured, e.g. ``["resid_post"]``."""
        return list(self.manifest["hooks"])

    @property
    def layers(self) -> List[int]:
        """Layers of the first hook (HF ``hidden_states`` indexing: 0 = embeddings)."""
        return list(self.manifest["layers"][self.hooks[0]])

    @property
    def fields(self) -> List[str]:
        """``["text"]`` or ``["chosen", "rejected"]``."""
        return list(self.manifest["fields"])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["dataset"]["n_examples"])

    def layer(self, hook: str, layer: int, field: str) -> np.ndarray:
        """The ``(n_examples, hidden)`` float32 rows of one hook, layer and field, in example
        order across parts."""
        return self._native.layer(hook, int(layer), field)

    def rewards(self) -> Optional[np.ndarray]:
        """``(n_examples, n_fields)`` float64 rewards (columns in :attr:`fields` order) when the
        model had a reward head, else ``None``."""
        return self._native.rewards()

    def __repr__(self) -> str:
        m = self.manifest["model"]
        return (f"Store({self.path!r}: {self.n_examples} examples, {m['architecture']} "
                f"hidden {m['hidden_size']}, layers {self.layers[0]}..{self.layers[-1]}, "
                f"fields {self.fields})")


def _as_2d(a: Any, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise RepdriftError(f"{name} has shape {a.shape}; expected a 2-D (n, d) array")
    return a


def pair_metrics(X: Any, Y: Any) -> Dict[str, Any]:
    """Every pair measure of ``X (n, d1)`` and ``Y (n, d2)`` (rows paired): ``n``,
    ``linear_cka``, ``debiased_cka``, ``cosine_distance``, ``cosine_distance_std``,
    ``procrustes_distance``, ``norm_ratio`` (``None`` when undefined), and ``null_reasons``
    saying why. float32 input is accumulated in float64 as the store path does; float64 input
    is used as is; other dtypes are converted to float64."""
    X, Y = _as_2d(X, "X"), _as_2d(Y, "Y")
    if X.dtype == np.float32 and Y.dtype == np.float32:
        raw = _pm32(np.ascontiguousarray(X), np.ascontiguousarray(Y))
    else:
        raw = _pm64(np.ascontiguousarray(X, dtype=np.float64),
                    np.ascontiguousarray(Y, dtype=np.float64))
    m = json.loads(raw)
    out: Dict[str, Any] = {"n": m.pop("n")}
    reasons = {}
    for k, v in m.items():
        out[k] = v["value"]
        if v["value"] is None:
            reasons[k] = v["reason"]
    out["null_reasons"] = reasons
    return out


def _measure(X: Any, Y: Any, key: str) -> float:
    v = pair_metrics(X, Y)[key]
    return math.nan if v is None else float(v)


def linear_cka(X: Any, Y: Any) -> float:
    """Linear CKA (Kornblith et al. 2019) of ``X (n, d1)`` and ``Y (n, d2)``; NaN when
    undefined (a constant side). See :func:`pair_metrics` for the reason."""
    return _measure(X, Y, "linear_cka")


def debiased_cka(X: Any, Y: Any) -> float:
    """CKA with the unbiased HSIC estimator (Song et al. 2012); needs n >= 4; NaN when
    undefined."""
    return _measure(X, Y, "debiased_cka")


def cosine_distance(X: Any, Y: Any) -> float:
    """Mean over rows of 1 - cos(x_i, y_i) on raw vectors (d1 == d2); NaN when undefined."""
    return _measure(X, Y, "cosine_distance")


def procrustes_distance(X: Any, Y: Any) -> float:
    """Orthogonal Procrustes distance of centred, unit-Frobenius X and Y: 2 - 2||X^T Y||_*,
    in [0, 2]; NaN when undefined."""
    return _measure(X, Y, "procrustes_distance")


def _frame(rows: List[Dict[str, Any]]) -> Any:
    try:
        import pandas as pd  # optional
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def _load(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise RepdriftError(f"{path}: not found") from None
    except json.JSONDecodeError as e:
        raise RepdriftError(f"{path}: not valid JSON ({e})") from None


def _flatten(row: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "null_reasons":
            out.update(_flatten(v, key + "_"))
        else:
            out[key] = v
    return out


def read_metrics(dir: PathLike) -> Any:
    """``repdrift compare``'s rows (one per student, hook, layer, field) from
    ``DIR/metrics.json`` as a DataFrame (a list of dicts without pandas). Nested values are
    flattened: ``null_lo`` … for permutation bands, ``ci_linear_cka_lo`` … for bootstrap CIs."""
    m = _load(os.path.join(os.fspath(dir), "metrics.json"))
    return _frame([_flatten(r) for r in m["rows"]])


def read_probe(dir: PathLike) -> Any:
    """``repdrift probe``'s rows (model, layer, train, eval, kind, accuracy, auc, n, c) from
    ``DIR/probe.json`` as a DataFrame (a list of dicts without pandas)."""
    p = _load(os.path.join(os.fspath(dir), "probe.json"))
    return _frame([_flatten(r) for r in p["rows"]])


def read_study(dir: PathLike) -> Any:
    """``repdrift study``'s runs (one row per method × regime × seed) from ``DIR/runs.csv``
    as a DataFrame (list of dicts without pandas); numbers parsed as floats."""
    path = os.path.join(os.fspath(dir), "runs.csv")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise RepdriftError(f"{path}: not found") from None

    def num(v: str) -> Any:
        if v == "":
            return None
        try:
            return float(v)
        except ValueError:
            return v

    return _frame([{k: num(v) for k, v in r.items()} for r in rows])
