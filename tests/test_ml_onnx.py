"""Training side: ONNX conversion equals the native LightGBM model; thresholds; reproduction.

Needs the ``dev`` extra (lightgbm, onnx, onnxmltools, scikit-learn). The full retraining test
also needs the shared tables and both benign corpora, and is skipped without them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("onnxmltools")
pytest.importorskip("sklearn")

from aegis_engine.ml.detector import MLDetector
from aegis_engine.ml.features import FEATURE_NAMES, FEATURE_VERSION
from aegis_engine.ml.manifest import MANIFEST_NAME, ModelManifest, Thresholds, load_manifest
from tools.ml import train
from tools.ml.dataset import (
    DEFAULT_CORPUS_DIR,
    DEFAULT_EXTRA_DIR,
    DEFAULT_TABLES_DIR,
    load_tables,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "resources" / "model"


def synthetic(
    n: int, seed: int, width: int = 86, signal: tuple[int, int] = (3, 10)
) -> tuple[np.ndarray, np.ndarray]:
    """Header-like rows: integers over wide ranges (large ones too, as ImageBase is); the
    label depends on the two ``signal`` columns."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([1, 16, 4096, 2**20, 2**32], size=width)
    scale[list(signal)] = 4096
    x = np.floor(rng.random((n, width)) * scale).astype(np.float32)
    a, b = signal
    logit = (x[:, a] / scale[a] - 0.5) * 6 + (x[:, b] / scale[b] > 0.7) * 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


def test_onnx_scores_equal_native_scores() -> None:
    x, y = synthetic(3000, 1)
    xv, yv = synthetic(1000, 2)
    xt, _ = synthetic(2000, 3)
    model = train.fit(x, y, np.ones(len(y)), xv, yv)
    blob = train.to_onnx(model, x.shape[1])
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
    feats = train.SHIPPED.features
    model = train.fit(
        tr.cols(feats), tr.y, np.ones(len(tr.y)), val.cols(feats), val.y, max_rounds=60
    )
    blob = train.to_onnx(model, len(feats))
    th = load_manifest(MODEL_DIR).thresholds
    eq = train.equivalence(model, blob, test.cols(feats), th)
    assert eq["rows"] == len(test.y) > 1000
    assert eq["max_abs_diff"] <= train.EQUIVALENCE_TOLERANCE


def test_detector_feeds_a_model_its_own_inputs_by_name(tmp_path: Path) -> None:
    """A model taking a subset of the features, in its own order, gets those columns: the
    detector's scores equal the native model's on the same rows."""
    picked = ("SizeOfCode", "e_cblp", "Magic", "CheckSum", "EntryPointToImageRatio")
    cols = [FEATURE_NAMES.index(n) for n in picked]
    width, signal = len(FEATURE_NAMES), (cols[0], cols[4])
    full, y = synthetic(3000, 4, width, signal)
    full_v, yv = synthetic(800, 5, width, signal)
    model = train.fit(full[:, cols], y, np.ones(len(y)), full_v[:, cols], yv)
    blob = train.to_onnx(model, len(picked))
    manifest = ModelManifest(
        version="test",
        model_file="m.onnx",
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
        feature_version=FEATURE_VERSION,
        features=picked,
        thresholds=Thresholds(0.5, 0.9),
        input_name="input",
        output_name="probabilities",
        score_column=1,
    )
    (tmp_path / "m.onnx").write_bytes(blob)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict()))
    det = MLDetector.from_model_dir(tmp_path, lambda w: pytest.fail(w))
    rows, _ = synthetic(200, 6, width, signal)
    got = np.asarray(det.score_vectors(rows.tolist()))
    want = train.native_scores(model, rows[:, cols])
    assert np.abs(got - want).max() <= train.EQUIVALENCE_TOLERANCE
    # Same rows with the model's columns shuffled elsewhere: the scores must change.
    shuffled = rows.copy()
    shuffled[:, cols] = rows[:, cols[::-1]]
    assert np.abs(np.asarray(det.score_vectors(shuffled.tolist())) - want).max() > 1e-3


def test_pick_threshold_respects_the_false_positive_rate() -> None:
    benign = np.arange(1000, dtype=np.float32) / 1000
    for fpr, allowed in ((0.01, 10), (0.001, 1), (0.0, 0)):
        t = train.pick_threshold(benign, fpr)
        assert int((benign >= t).sum()) == allowed
    ties = np.full(500, 0.5, dtype=np.float32)
    t = train.pick_threshold(ties, 0.01)
    assert int((ties >= t).sum()) == 0 and t > 0.5


def test_shipped_recipe_leaves_out_the_checksum_only() -> None:
    assert train.SHIPPED.features == tuple(
        n for n in FEATURE_NAMES if n not in ("CheckSum", "CheckSumIsZero")
    )
    assert train.NAIVE.features == FEATURE_NAMES[:86] and train.NAIVE.corpus_weight is None
    assert load_manifest(MODEL_DIR).features == train.SHIPPED.features


@pytest.mark.slow
def test_retraining_reproduces_the_shipped_model() -> None:
    if not (
        DEFAULT_TABLES_DIR.is_dir() and DEFAULT_CORPUS_DIR.is_dir() and DEFAULT_EXTRA_DIR.is_dir()
    ):
        pytest.skip("tables or benign corpora not present (see tools/ml/train.py)")
    shipped = load_manifest(MODEL_DIR)
    import lightgbm

    versions = shipped.extra["training"]["versions"]
    if versions["lightgbm"] != lightgbm.__version__:
        pytest.skip(f"shipped model built with lightgbm {versions['lightgbm']}")
    report, blob, naive = train.train_all(
        DEFAULT_TABLES_DIR, DEFAULT_CORPUS_DIR, DEFAULT_EXTRA_DIR, log=lambda _m: None
    )
    # The data this run actually read, against the data the shipped model was built from.
    # Different files on disk (another Debian point release, a corpus being rebuilt) make
    # the comparison meaningless: skip. Same files but another train half: a real change.
    used, then = report["data"], shipped.extra["training"]["data"]
    if used["tables"] != then["tables"] or (
        used["corpus_all_files_sha256"] != then["corpus_all_files_sha256"]
    ):
        pytest.skip("tables or corpus files differ from the ones the shipped model was built on")
    assert used["corpus_train_files_sha256"] == then["corpus_train_files_sha256"]
    assert used["corpus_files"] == then["corpus_files"]
    assert train.check_report(report, blob) == []
    manifest = train.build_manifest(report, blob, naive)
    assert manifest.sha256 == shipped.sha256
    assert manifest.thresholds == shipped.thresholds
    assert json.loads(json.dumps(manifest.extra["metrics"])) == shipped.extra["metrics"]
