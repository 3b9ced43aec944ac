"""Training side: ONNX conversion equals the native LightGBM model; thresholds; reproduction.

Needs the ``dev`` extra (lightgbm, onnx, onnxmltools, scikit-learn). The full retraining test
also needs the shared tables and both benign corpora, and is skipped without them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")
pytest.importorskip("sklearn")

from aegis_engine.ml import train
from aegis_engine.ml.dataset import DEFAULT_CORPUS_DIR, DEFAULT_TABLES_DIR, load_tables
from aegis_engine.ml.features import FEATURE_NAMES
from aegis_engine.ml.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "resources" / "model"


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Header-like rows: integers over wide ranges (large ones too, as ImageBase is)."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([1, 16, 4096, 2**20, 2**32], size=len(FEATURE_NAMES))
    x = np.floor(rng.random((n, len(FEATURE_NAMES))) * scale).astype(np.float32)
    logit = (x[:, 3] / scale[3] - 0.5) * 6 + (x[:, 10] / scale[10] > 0.7) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def test_onnx_scores_equal_native_scores() -> None:
    x, y = synthetic(3000, 1)
    xv, yv = synthetic(1000, 2)
    xt, _ = synthetic(2000, 3)
    val = train.Split(xv, yv, np.zeros(len(yv), dtype=bool), np.zeros(len(yv), dtype=bool))
    model = train.fit(x, y, np.ones(len(y)), val)
    blob = train.to_onnx(model)
    native = train.native_scores(model, xt)
    onnx = train.onnx_scores(blob, xt).astype(np.float64)
    assert model.num_trees() > 5
    assert np.abs(native - onnx).max() <= train.EQUIVALENCE_TOLERANCE
    assert len(blob) <= train.MAX_MODEL_BYTES


def test_onnx_scores_equal_native_on_the_real_test_split() -> None:
    if not DEFAULT_TABLES_DIR.is_dir():
        pytest.skip("shared PE header tables not present")
    rows, _ = load_tables(DEFAULT_TABLES_DIR)
    tr, val, test = (train._split(rows, n) for n in ("train", "val", "test"))
    model = train.fit(tr.x, tr.y, np.ones(len(tr.y)), val, max_rounds=60)  # small, fast
    blob = train.to_onnx(model)
    th = load_manifest(MODEL_DIR).thresholds
    eq = train.equivalence(model, blob, test, th)
    assert eq["rows"] == len(test.y) > 1000
    assert eq["max_abs_diff"] <= train.EQUIVALENCE_TOLERANCE


def test_pick_threshold_respects_the_false_positive_rate() -> None:
    benign = np.arange(1000, dtype=np.float32) / 1000
    for fpr, allowed in ((0.01, 10), (0.001, 1), (0.0, 0)):
        t = train.pick_threshold(benign, fpr)
        assert int((benign >= t).sum()) == allowed
    ties = np.full(500, 0.5, dtype=np.float32)
    t = train.pick_threshold(ties, 0.01)
    assert int((ties >= t).sum()) == 0 and t > 0.5


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_model() -> None:
    mingw = train.DEFAULT_MINGW_DIR
    if not (DEFAULT_TABLES_DIR.is_dir() and DEFAULT_CORPUS_DIR.is_dir() and mingw.is_dir()):
        pytest.skip("tables or benign corpora not present (see aegis_engine/ml/train.py)")
    report, blob, _naive = train.train_all(
        DEFAULT_TABLES_DIR, {"wine": DEFAULT_CORPUS_DIR, "mingw": mingw}, log=lambda _m: None
    )
    assert train.check_report(report, blob) == []
    shipped = load_manifest(MODEL_DIR)
    import lightgbm

    versions = shipped.extra["training"]["versions"]
    if versions["lightgbm"] != lightgbm.__version__:
        pytest.skip(f"shipped model built with lightgbm {versions['lightgbm']}")
    manifest = train.build_manifest(report, blob, _naive)
    assert manifest.sha256 == shipped.sha256
    assert manifest.thresholds == shipped.thresholds
