"""pytest suite of the repdrift Python package. Truth: float64 NumPy implementations of the
measures written here from their definitions (Kornblith et al. 2019 for linear CKA, Song et
al. 2012's unbiased HSIC for debiased CKA, the orthogonal Procrustes distance via the nuclear
norm), and the store format (safetensors part files read with NumPy only, in this file)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import repdrift

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("REPDRIFT_BIN", ROOT / "target" / "release" / "repdrift"))
MINILM = ROOT / "models" / "all-minilm-l6-v2"


# ---- float64 references -------------------------------------------------------------------
def ref_linear_cka(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def ref_hsic_unbiased(K, L):
    n = K.shape[0]
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * (one @ K @ L @ one)) / (n * (n - 3))


def ref_debiased_cka(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return ref_hsic_unbiased(K, L) / np.sqrt(ref_hsic_unbiased(K, K) * ref_hsic_unbiased(L, L))


def ref_cosine_distance(X, Y):
    c = (X * Y).sum(1) / (np.linalg.norm(X, axis=1) * np.linalg.norm(Y, axis=1))
    return float(np.mean(1 - c))


def ref_procrustes(X, Y):
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    X = X / np.linalg.norm(X)
    Y = Y / np.linalg.norm(Y)
    return 2 - 2 * np.linalg.svd(X.T @ Y, compute_uv=False).sum()


def pair(rng, n=200, d1=24, d2=24, noise=0.5):
    X = rng.standard_normal((n, d1)) @ rng.standard_normal((d1, d1))
    W = rng.standard_normal((d1, d2))
    Y = X @ W + noise * rng.standard_normal((n, d2))
    return X, Y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_measures_match_float64_numpy_on_float64_input(seed):
    X, Y = pair(np.random.default_rng(seed))
    for got, want in [
        (repdrift.linear_cka(X, Y), ref_linear_cka(X, Y)),
        (repdrift.debiased_cka(X, Y), ref_debiased_cka(X, Y)),
        (repdrift.cosine_distance(X, Y), ref_cosine_distance(X, Y)),
        (repdrift.procrustes_distance(X, Y), ref_procrustes(X, Y)),
    ]:
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_float32_input_is_accumulated_in_float64():
    # float32 input: the reference on the same float32 values, upcast (the store path).
    X, Y = pair(np.random.default_rng(7), n=300, d1=16, d2=32)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    got = repdrift.linear_cka(X32, Y32)
    assert got == pytest.approx(ref_linear_cka(X32.astype(np.float64), Y32.astype(np.float64)),
                                rel=1e-10)
    assert repdrift.procrustes_distance(X32, Y32) == pytest.approx(
        ref_procrustes(X32.astype(np.float64), Y32.astype(np.float64)), rel=1e-9, abs=1e-12)


def test_properties_identity_rotation_and_widths():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((100, 12))
    Q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    assert repdrift.linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert repdrift.linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-12)
    assert repdrift.procrustes_distance(X, 3.0 * X @ Q) == pytest.approx(0.0, abs=1e-10)
    # Different widths are fine for CKA; cosine distance needs equal widths.
    m = repdrift.pair_metrics(X, X[:, :5])
    assert m["linear_cka"] is not None
    assert m["cosine_distance"] is None and "cosine_distance" in m["null_reasons"]


def test_undefined_values_are_nan_with_a_reason_and_bad_input_raises():
    X = np.ones((10, 4))
    Y = np.random.default_rng(0).standard_normal((10, 4))
    assert np.isnan(repdrift.linear_cka(X, Y))
    assert "zero variance" in repdrift.pair_metrics(X, Y)["null_reasons"]["linear_cka"]
    with pytest.raises(repdrift.RepdriftError, match="shape"):
        repdrift.linear_cka(np.ones((10, 3)), np.ones((9, 3)))
    with pytest.raises(repdrift.RepdriftError, match="NaN or Inf"):
        Z = Y.copy()
        Z[4, 1] = np.nan
        repdrift.linear_cka(Z, Y)
    with pytest.raises(repdrift.RepdriftError, match="2-D"):
        repdrift.linear_cka(np.ones(5), np.ones(5))


# ---- stores captured with the CLI ----------------------------------------------------------
def read_part(path, field):
    """A safetensors part file read with NumPy only (the documented format)."""
    b = Path(path).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    t = h[field]
    s, e = t["data_offsets"]
    assert t["dtype"] == "F32"
    return np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(t["shape"])


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    if not BIN.exists() or not MINILM.exists():
        pytest.fail(f"{BIN} or {MINILM} missing: run `bash scripts/fetch-models.sh` and "
                    "`cargo build --release` (scripts/python-test.sh does both)")
    d = tmp_path_factory.mktemp("stores")
    data = d / "pairs.jsonl"
    with open(data, "w") as f:
        for i in range(20):
            f.write(json.dumps({"prompt": f"Question {i}: what now?", "chosen": f" Calmly, step {i}.",
                                "rejected": " Recklessly" + "!" * (i % 4)}) + "\n")
    out = {}
    for name, extra in [("a", []), ("b", ["--batch-size", "1"])]:
        out[name] = d / name
        subprocess.run([str(BIN), "capture", "--model", str(MINILM), "--data", str(data), "--out",
                        str(out[name]), "--part-size", "6"] + extra, check=True,
                       capture_output=True)
    subprocess.run([str(BIN), "compare", "--base", str(out["a"]), "--student",
                    f"b={out['b']}", "--out", str(d / "metrics")], check=True, capture_output=True)
    subprocess.run([str(BIN), "probe", "--train", f"src={out['a']}", "--out", str(d / "probe"),
                    "--folds", "3"], check=True, capture_output=True)
    out["dir"] = d
    return out


def test_store_reads_rows_in_example_order_across_parts(stores):
    s = repdrift.Store(stores["a"])
    assert s.hooks == ["resid_post"] and s.layers == list(range(7))
    assert s.fields == ["chosen", "rejected"] and s.n_examples == 20
    X = s.layer("resid_post", 3, "chosen")
    assert X.dtype == np.float32 and X.shape == (20, 384)
    parts = [read_part(stores["a"] / "resid_post" / "layer_003" / f"part_{p['index']:05d}.safetensors",
                       "chosen") for p in s.manifest["parts"]]
    assert len(parts) == 4
    np.testing.assert_array_equal(X, np.concatenate(parts))
    assert s.rewards() is None
    assert "20 examples" in repr(s)


def test_store_errors_name_the_problem(stores, tmp_path):
    with pytest.raises(repdrift.RepdriftError, match="manifest.json"):
        repdrift.Store(tmp_path / "nowhere")
    s = repdrift.Store(stores["a"])
    with pytest.raises(repdrift.RepdriftError, match="no resid_post layer 9"):
        s.layer("resid_post", 9, "chosen")
    with pytest.raises(repdrift.RepdriftError, match="no field"):
        s.layer("resid_post", 1, "text")


def test_metrics_on_stores_equal_the_cli_and_numpy(stores):
    a, b = repdrift.Store(stores["a"]), repdrift.Store(stores["b"])
    df = repdrift.read_metrics(stores["dir"] / "metrics")
    for layer in a.layers[1:]:
        X = a.layer("resid_post", layer, "chosen")
        Y = b.layer("resid_post", layer, "chosen")
        got = repdrift.linear_cka(X, Y)
        ref = ref_linear_cka(X.astype(np.float64), Y.astype(np.float64))
        assert got == pytest.approx(ref, rel=1e-10)
        row = df[(df.layer == layer) & (df.field == "chosen")]
        assert row.linear_cka.iloc[0] == pytest.approx(got, rel=1e-12)


def test_results_read_as_dataframes_or_lists(stores, monkeypatch):
    p = repdrift.read_probe(stores["dir"] / "probe")
    assert {"model", "layer", "kind", "accuracy"} <= set(p.columns)
    assert ((p.accuracy >= 0) & (p.accuracy <= 1)).all()
    # Without pandas: lists of dicts.
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = repdrift.read_metrics(stores["dir"] / "metrics")
    assert isinstance(rows, list) and rows[0]["student"] == "b"
    with pytest.raises(repdrift.RepdriftError, match="not found"):
        repdrift.read_study(stores["dir"])


def test_read_study_parses_runs(tmp_path):
    (tmp_path / "runs.csv").write_text(
        "id,method,regime,seed,steps,steps_per_second,train_seconds,final_bt_loss,weak_label_accuracy\n"
        "naive-top4-s0,naive,top4,0,30,0.5,60.0,0.61,0.8\n")
    rows = repdrift.read_study(tmp_path)
    assert rows.iloc[0]["method"] == "naive" and rows.iloc[0]["steps"] == 30.0
