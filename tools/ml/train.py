"""Trains the PE header model, converts it to ONNX, checks it and writes resources/model.

    python -m tools.ml.train             # retrain and write resources/model/
    python -m tools.ml.train --check     # retrain and compare with the shipped model
    python -m tools.ml.train --explore   # the alternatives tried, figures only
    python -m tools.ml.train --evaluate DIR   # an existing model's figures on today's data

Needs the ``dev`` extra (lightgbm, onnx, onnxmltools, scikit-learn), the shared tables
(``../shared/datasets/pe-headers``) and both benign corpora (Debian packages only):

    bash ../shared/corpus/get-benign-pe.sh .corpus/benign-pe        # source "wine"
    bash bench/ml_get_extra_pe.sh .corpus/benign-pe-extra           # nsis, mingw, dotnet, efi...

Everything is fixed: hash-based splits (see :mod:`.dataset`), one seed, one thread,
LightGBM's deterministic mode. Two models are trained:

* ``naive``: the tables only, with model 1.0.0's 86 features. Its figures are reported (the
  model card shows what it does to non-Microsoft software) but it is not shipped;
* ``shipped``: :data:`MODEL_FEATURES` (no checksum fields, plus the header-consistency
  features), trained on the tables plus the "train" half of every corpus source (benign rows,
  weight :data:`CORPUS_WEIGHT`). Its false positives are measured on each source's
  "holdout" half, which no model here is trained on.

Early stopping and both thresholds use the tables' validation split only (no corpus row):
``suspicious`` is the lowest score at which at most 1% of validation benign rows score at or
above it, ``malicious`` the same at 0.1%. The test split is only ever reported.

``--explore`` trains the alternatives listed in :data:`EXPLORE` (feature sets, corpus
weights, a monotone and a smaller model) and, for each, the leave-one-source-out figures:
one model per corpus source trained without any file of that source, scored on all of its
files, i.e. false positives on a toolchain the model has never seen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aegis_engine.ml.features import (
    DERIVED_FIELDS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    HEADER_FIELDS,
    FeatureStatus,
    columns_for,
)
from aegis_engine.ml.manifest import (
    MANIFEST_NAME,
    ModelManifest,
    Thresholds,
    load_manifest,
    load_verified_model,
)
from tools.ml.dataset import (
    DEFAULT_CORPUS_DIR,
    DEFAULT_EXTRA_DIR,
    DEFAULT_TABLES_DIR,
    REPO_ROOT,
    CorpusFile,
    TableRow,
    TableStats,
    load_corpora,
    load_tables,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Scorer = Callable[[F32], npt.NDArray[Any]]
"""Scores for rows of every feature in FEATURE_NAMES (the scorer picks its own columns)."""

MODEL_VERSION = "1.1.0"
MODEL_FILE = "pe_header_gbdt.onnx"
SEED = 20240917
SUSPICIOUS_FPR = 0.01
MALICIOUS_FPR = 0.001
CORPUS_WEIGHT = 3.0
"""Weight of each benign corpus file in training (a table row weighs 1)."""
EQUIVALENCE_TOLERANCE = 1e-5
"""Largest |native - ONNX| score difference accepted on the test split."""
MAX_MODEL_BYTES = 5 * 1024 * 1024
DEFAULT_OUT = REPO_ROOT / "resources" / "model"

V1_FEATURES: tuple[str, ...] = HEADER_FIELDS + DERIVED_FIELDS
"""Model 1.0.0's 86 inputs (the naive baseline keeps them)."""
CHECKSUM_FEATURES: tuple[str, ...] = ("CheckSum", "CheckSumIsZero")
"""Left out of the shipped model: a zero checksum marks "not a Windows system file" rather
than malware (4% of the tables' benign rows, 1/3 of their malware, half the non-Wine benign
corpus files); with them, unseen toolchains are flagged several times as often (model card)."""
MODEL_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if n not in CHECKSUM_FEATURES)
VERSION_FEATURES: tuple[str, ...] = (
    "MajorLinkerVersion",
    "MinorLinkerVersion",
    "MajorOperatingSystemVersion",
    "MinorOperatingSystemVersion",
    "MajorImageVersion",
    "MinorImageVersion",
    "MajorSubsystemVersion",
    "MinorSubsystemVersion",
)
DOS_STUB_FEATURES: tuple[str, ...] = tuple(n for n in HEADER_FIELDS if n.startswith("e_"))

LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "binary_logloss",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "seed": SEED,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
MAX_ROUNDS = 2000
"""Upper bound on trees: early stopping on validation log-loss picks the count."""
EARLY_STOPPING_ROUNDS = 100
_GNU_LD = FEATURE_NAMES.index("MajorLinkerVersion")
_DLL = FEATURE_NAMES.index("Characteristics_0x2000")


class TrainingError(RuntimeError):
    """Training could not produce a model that passes its own checks."""


@dataclass(frozen=True)
class Recipe:
    """How one model is trained."""

    name: str
    features: tuple[str, ...]
    corpus_weight: float | None = CORPUS_WEIGHT
    """Weight of each corpus train-half file; None trains on the tables alone."""
    source_weight: float | None = None
    """If set instead: every source's train half weighs this much in all (in table rows)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    monotone: Mapping[str, int] = field(default_factory=dict)
    """Monotone constraints by feature name (+1: the score can only rise with the value)."""


NAIVE = Recipe("naive", V1_FEATURES, corpus_weight=None)
SHIPPED = Recipe("shipped", MODEL_FEATURES)

_NO_CHECKSUM_V1 = tuple(n for n in V1_FEATURES if n not in CHECKSUM_FEATURES)
EXPLORE: tuple[Recipe, ...] = (
    Recipe("v1 features, tables only (naive)", V1_FEATURES, corpus_weight=None),
    Recipe("v1 features (model 1.0.0 recipe)", V1_FEATURES),
    Recipe("all 96 features", FEATURE_NAMES),
    Recipe("v1 - checksum", _NO_CHECKSUM_V1),
    Recipe("96 - checksum (shipped)", MODEL_FEATURES),
    Recipe("96 - checksum, tables only", MODEL_FEATURES, corpus_weight=None),
    Recipe("96 - versions", tuple(n for n in FEATURE_NAMES if n not in VERSION_FEATURES)),
    Recipe(
        "96 - versions - checksum",
        tuple(n for n in MODEL_FEATURES if n not in VERSION_FEATURES),
    ),
    Recipe(
        "96 - versions - checksum - DOS header - ImageBase",
        tuple(
            n
            for n in MODEL_FEATURES
            if n not in VERSION_FEATURES + DOS_STUB_FEATURES + ("ImageBase",)
        ),
    ),
    Recipe("shipped, corpus weight 1", MODEL_FEATURES, corpus_weight=1.0),
    Recipe("shipped, corpus weight 10", MODEL_FEATURES, corpus_weight=10.0),
    Recipe("shipped, 300 rows per source", MODEL_FEATURES, source_weight=300.0),
    Recipe("shipped, 15 leaves", MODEL_FEATURES, params={"num_leaves": 15}),
    Recipe(
        "shipped, monotone ASLR/NX (-1)",
        MODEL_FEATURES,
        monotone={"DllCharacteristics_0x0040": -1, "DllCharacteristics_0x0100": -1},
    ),
)
"""The alternatives ``--explore`` measures (the model card's table)."""


@dataclass
class Split:
    x: F32
    """Every feature in FEATURE_NAMES; :meth:`cols` picks a model's inputs."""
    y: I64
    gnu_ld: npt.NDArray[np.bool_]
    """Rows whose MajorLinkerVersion is 2 (GNU ld, i.e. MinGW-built)."""
    dll: npt.NDArray[np.bool_]
    """Rows with IMAGE_FILE_DLL set."""

    def cols(self, features: Sequence[str]) -> F32:
        return np.ascontiguousarray(self.x[:, list(columns_for(features))])


@dataclass
class Data:
    rows: list[TableRow]
    stats: TableStats
    train: Split
    val: Split
    test: Split
    corpus: list[CorpusFile]


def _split(rows: Sequence[TableRow], name: str) -> Split:
    chosen = [r for r in rows if r.split == name]
    x = np.asarray([r.vector for r in chosen], dtype=np.float32).reshape(
        len(chosen), len(FEATURE_NAMES)
    )
    y = np.asarray([r.label for r in chosen], dtype=np.int64)
    return Split(x, y, x[:, _GNU_LD] == 2, x[:, _DLL] == 1)


def load_data(tables_dir: Path, wine_dir: Path | None, extra_dir: Path | None) -> Data:
    rows, stats = load_tables(tables_dir)
    train, val, test = (_split(rows, n) for n in ("train", "val", "test"))
    return Data(rows, stats, train, val, test, load_corpora(wine_dir, extra_dir))


def pick_threshold(benign_scores: npt.ArrayLike, max_fpr: float) -> float:
    """The lowest float32 score t such that at most ``max_fpr`` of ``benign_scores`` are >= t."""
    s = np.sort(np.asarray(benign_scores, dtype=np.float32))[::-1]
    allowed = math.floor(max_fpr * len(s) + 1e-9)
    if allowed >= len(s):
        return 0.0
    return float(np.nextafter(s[allowed], np.float32(np.inf)))


def rate(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def tpr_at_fpr(y: I64, scores: npt.NDArray[Any], max_fpr: float) -> float:
    """Best detection rate on (y, scores) with a false-positive rate <= max_fpr (ROC point)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    return float(tpr[fpr <= max_fpr].max())


def fit(
    x: F32,
    y: I64,
    weight: F64,
    val_x: F32,
    val_y: I64,
    *,
    params: Mapping[str, Any] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> Any:
    """A LightGBM booster cut to its best iteration on the validation rows."""
    import lightgbm as lgb

    booster = lgb.train(
        {**LGBM_PARAMS, **(params or {})},
        lgb.Dataset(x, label=y, weight=weight, free_raw_data=False),
        num_boost_round=max_rounds,
        valid_sets=[lgb.Dataset(val_x, label=val_y)],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def native_scores(model: Any, x: F32) -> F64:
    return np.asarray(model.predict(x), dtype=np.float64)


def to_onnx(model: Any, n_features: int) -> bytes:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(
        model,
        name="aegis-pe-header-gbdt",
        initial_types=[("input", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    onx.doc_string = f"Aegis PE header model {MODEL_VERSION}, features v{FEATURE_VERSION}"
    # onnxmltools collects the opsets in a set: their order, hence the bytes, would follow
    # the process's string hash seed. Sorted, the same model always gives the same bytes.
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    blob: bytes = onx.SerializeToString(deterministic=True)
    return blob


def onnx_scores(blob: bytes, x: F32) -> F32:
    """Scores of the ONNX model for rows of its own inputs."""
    from aegis_engine.ml.runtime import inference_session

    sess = inference_session(blob)
    out = sess.run(["probabilities"], {"input": x})[0]
    return np.asarray(out[:, 1], dtype=np.float32)


def onnx_scorer(blob: bytes, features: Sequence[str]) -> Scorer:
    cols = list(columns_for(features))
    return lambda x: onnx_scores(blob, np.ascontiguousarray(x[:, cols]))


def native_scorer(model: Any, features: Sequence[str]) -> Scorer:
    cols = list(columns_for(features))
    return lambda x: native_scores(model, np.ascontiguousarray(x[:, cols]))


def corpus_matrix(files: Sequence[CorpusFile]) -> F32:
    ok = [f.vector for f in files if f.status is FeatureStatus.OK]
    return np.asarray(ok, dtype=np.float32).reshape(len(ok), len(FEATURE_NAMES))


def train_model(
    recipe: Recipe, data: Data, *, exclude_source: str | None = None
) -> tuple[Any, int]:
    """The booster for ``recipe`` and the number of corpus rows it was trained on."""
    extra: list[CorpusFile] = []
    if recipe.corpus_weight is not None or recipe.source_weight is not None:
        extra = [
            f
            for f in data.corpus
            if f.split == "train" and f.status is FeatureStatus.OK and f.source != exclude_source
        ]
    cx = corpus_matrix(extra)
    x = np.concatenate([data.train.x, cx])[:, list(columns_for(recipe.features))]
    y = np.concatenate([data.train.y, np.zeros(len(cx), dtype=np.int64)])
    if recipe.source_weight is not None:
        per_source = Counter(f.source for f in extra)
        cw = np.asarray([recipe.source_weight / per_source[f.source] for f in extra])
    else:
        cw = np.full(len(cx), recipe.corpus_weight or 0.0)
    w = np.concatenate([np.ones(len(data.train.y)), cw])
    params = dict(recipe.params)
    if recipe.monotone:
        params["monotone_constraints"] = [recipe.monotone.get(n, 0) for n in recipe.features]
        params["monotone_constraints_method"] = "advanced"
    model = fit(x, y, w, data.val.cols(recipe.features), data.val.y, params=params)
    return model, len(cx)


def thresholds_on_validation(score: Scorer, val: Split) -> Thresholds:
    benign = score(val.x)[val.y == 0]
    return Thresholds(
        suspicious=pick_threshold(benign, SUSPICIOUS_FPR),
        malicious=pick_threshold(benign, MALICIOUS_FPR),
    )


def evaluate(
    score: Scorer, data: Data, th: Thresholds | None = None, *, corpus_only: bool = False
) -> dict[str, Any]:
    """Every figure the model card reports, with thresholds from validation (or ``th``)."""
    from sklearn.metrics import roc_auc_score

    val, test = data.val, data.test
    val_scores = score(val.x)
    if th is None:
        th = thresholds_on_validation(score, val)
    out: dict[str, Any] = {"thresholds": th.to_dict()}
    if not corpus_only:
        s = score(test.x)
        mal, ben = test.y == 1, test.y == 0
        out["validation"] = {
            "benign": int((val.y == 0).sum()),
            "malware": int((val.y == 1).sum()),
            "roc_auc": float(roc_auc_score(val.y, val_scores)),
            "fpr_suspicious": rate(val_scores[val.y == 0] >= th.suspicious),
            "fpr_malicious": rate(val_scores[val.y == 0] >= th.malicious),
        }
        out["test"] = {
            "benign": int(ben.sum()),
            "malware": int(mal.sum()),
            "roc_auc": float(roc_auc_score(test.y, s)),
            "detection_at_suspicious": rate(s[mal] >= th.suspicious),
            "fpr_at_suspicious": rate(s[ben] >= th.suspicious),
            "detection_at_malicious": rate(s[mal] >= th.malicious),
            "fpr_at_malicious": rate(s[ben] >= th.malicious),
            "roc_detection_at_1pct_fpr": tpr_at_fpr(test.y, s, 0.01),
            "roc_detection_at_0.1pct_fpr": tpr_at_fpr(test.y, s, 0.001),
            "gnu_ld_malware": int((mal & test.gnu_ld).sum()),
            "gnu_ld_detection_at_suspicious": rate(s[mal & test.gnu_ld] >= th.suspicious),
            "gnu_ld_benign": int((ben & test.gnu_ld).sum()),
            "gnu_ld_fpr_at_suspicious": rate(s[ben & test.gnu_ld] >= th.suspicious),
            "exe_benign": int((ben & ~test.dll).sum()),
            "exe_fpr_at_suspicious": rate(s[ben & ~test.dll] >= th.suspicious),
            "exe_fpr_at_malicious": rate(s[ben & ~test.dll] >= th.malicious),
            "exe_malware": int((mal & ~test.dll).sum()),
            "exe_detection_at_suspicious": rate(s[mal & ~test.dll] >= th.suspicious),
            "dll_benign": int((ben & test.dll).sum()),
            "dll_fpr_at_suspicious": rate(s[ben & test.dll] >= th.suspicious),
            "dll_fpr_at_malicious": rate(s[ben & test.dll] >= th.malicious),
            "dll_malware": int((mal & test.dll).sum()),
            "dll_detection_at_suspicious": rate(s[mal & test.dll] >= th.suspicious),
        }
    ok = [f for f in data.corpus if f.status is FeatureStatus.OK]
    scores = score(corpus_matrix(ok)) if ok else np.zeros(0, np.float32)
    by_file = {f.sha256: float(sc) for f, sc in zip(ok, scores, strict=True)}
    corpora: dict[str, Any] = {}
    for part in ("holdout", "train"):
        for source in sorted({f.source for f in data.corpus}):
            chosen = [f for f in data.corpus if f.source == source and f.split == part]
            if not chosen:
                continue
            sc = [by_file[f.sha256] for f in chosen if f.sha256 in by_file]
            corpora[f"{source}/{part}"] = {
                "files": len(chosen),
                "families": len({f.family for f in chosen}),
                "not_scored": len(chosen) - len(sc),
                "suspicious": sum(v >= th.suspicious for v in sc),
                "malicious": sum(v >= th.malicious for v in sc),
                "max_score": round(max(sc, default=0.0), 4),
                "flagged": sorted(
                    (f.name, round(by_file[f.sha256], 4))
                    for f in chosen
                    if by_file.get(f.sha256, 0.0) >= th.suspicious
                ),
            }
    out["corpora"] = corpora
    held = [v for k, v in corpora.items() if k.endswith("/holdout")]
    out["holdout_total"] = {
        key: sum(v[key] for v in held) for key in ("files", "suspicious", "malicious")
    }
    return out


def leave_one_source_out(recipe: Recipe, data: Data) -> dict[str, dict[str, float]]:
    """For each corpus source: a model trained without any file of it (tables and the other
    sources' train halves), its thresholds from validation, and its findings on every file of
    that source (both halves): false positives on a toolchain never seen in training."""
    out: dict[str, dict[str, float]] = {}
    for source in sorted({f.source for f in data.corpus if f.split == "train"}):
        model, _ = train_model(recipe, data, exclude_source=source)
        score = native_scorer(model, recipe.features)
        th = thresholds_on_validation(score, data.val)
        files = [f for f in data.corpus if f.source == source and f.status is FeatureStatus.OK]
        sc = score(corpus_matrix(files))
        out[source] = {
            "files": len(files),
            "families": len({f.family for f in files}),
            "suspicious": int((sc >= th.suspicious).sum()),
            "malicious": int((sc >= th.malicious).sum()),
            "families_flagged": len(
                {f.family for f, v in zip(files, sc, strict=True) if v >= th.suspicious}
            ),
            "max_score": round(float(sc.max()), 4) if len(sc) else 0.0,
            "suspicious_threshold": round(th.suspicious, 4),
        }
    return out


def equivalence(model: Any, blob: bytes, x_test: F32, th: Thresholds) -> dict[str, Any]:
    """Native vs ONNX scores on ``x_test`` (rows of the model's own inputs)."""
    native = native_scores(model, x_test)
    onnx = onnx_scores(blob, x_test).astype(np.float64)
    diff = np.abs(native - onnx)

    def sev(sc: F64) -> npt.NDArray[np.int64]:
        return (sc >= th.suspicious).astype(np.int64) + (sc >= th.malicious).astype(np.int64)

    return {
        "rows": len(native),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "severity_disagreements": int((sev(native) != sev(onnx)).sum()),
        "tolerance": EQUIVALENCE_TOLERANCE,
    }


def train_all(
    tables_dir: Path,
    wine_dir: Path | None,
    extra_dir: Path | None,
    log: Callable[[str], object] = print,
) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """Both models; returns (shipped model's report, its ONNX bytes, naive report)."""
    t0 = time.perf_counter()
    data = load_data(tables_dir, wine_dir, extra_dir)
    sources = Counter(f.source for f in data.corpus)
    log(
        f"data: {len(data.rows)} distinct table rows, {len(data.corpus)} corpus files ("
        + ", ".join(f"{k}={v}" for k, v in sorted(sources.items()))
        + f") ({time.perf_counter() - t0:.1f}s)"
    )

    naive, _ = train_model(NAIVE, data)
    naive_blob = to_onnx(naive, len(NAIVE.features))
    naive_report = evaluate(onnx_scorer(naive_blob, NAIVE.features), data)
    naive_report["trees"] = int(naive.num_trees())
    naive_report["features"] = len(NAIVE.features)
    naive_th = Thresholds(**naive_report["thresholds"])
    naive_report["equivalence"] = equivalence(
        naive, naive_blob, data.test.cols(NAIVE.features), naive_th
    )
    log(f"naive model: {naive_report['trees']} trees ({time.perf_counter() - t0:.1f}s)")

    model, n_corpus = train_model(SHIPPED, data)
    blob = to_onnx(model, len(SHIPPED.features))
    report = evaluate(onnx_scorer(blob, SHIPPED.features), data)
    report["trees"] = int(model.num_trees())
    report["features"] = len(SHIPPED.features)
    th = Thresholds(**report["thresholds"])
    report["equivalence"] = equivalence(model, blob, data.test.cols(SHIPPED.features), th)
    log(f"shipped model: {report['trees']} trees ({time.perf_counter() - t0:.1f}s)")

    report["data"] = _data_facts(data, tables_dir, n_corpus)
    report["feature_importance_gain"] = _importance(model, SHIPPED.features)
    return report, blob, naive_report


def _data_facts(data: Data, tables_dir: Path, corpus_train_rows: int) -> dict[str, Any]:
    from tools.ml.dataset import TABLES

    splits: dict[str, dict[str, int]] = {}
    for r in data.rows:
        d = splits.setdefault(r.split, {"benign": 0, "malware": 0})
        d["malware" if r.label else "benign"] += 1
    corpus: dict[str, dict[str, int]] = {}
    for f in data.corpus:
        c = corpus.setdefault(f.source, {"train": 0, "holdout": 0})
        c[f.split] += 1
    trained = sorted(f.sha256 for f in data.corpus if f.split == "train")
    every = sorted(f.sha256 for f in data.corpus)
    stats = data.stats
    return {
        "tables": {
            name: hashlib.sha256((tables_dir / name).read_bytes()).hexdigest() for name, _ in TABLES
        },
        "rows_read": stats.rows_read,
        "rows_invalid": stats.invalid,
        "rows_duplicate": stats.duplicates,
        "keys_with_conflicting_labels": stats.conflicting_keys,
        "distinct_rows": len(data.rows),
        "splits": splits,
        "corpus_files": corpus,
        "corpus_train_rows": corpus_train_rows,
        "corpus_train_files_sha256": digest_of(trained),
        "corpus_all_files_sha256": digest_of(every),
        "corpus_weight": CORPUS_WEIGHT,
    }


def digest_of(sha256s: Sequence[str]) -> str:
    """One SHA-256 for a sorted list of file digests (which corpus a model was built from)."""
    return hashlib.sha256("\n".join(sorted(sha256s)).encode()).hexdigest()


def _importance(model: Any, features: Sequence[str]) -> list[tuple[str, float]]:
    gains = model.feature_importance(importance_type="gain")
    total = float(np.sum(gains)) or 1.0
    ranked = sorted(zip(features, gains, strict=True), key=lambda t: -float(t[1]))
    return [(n, round(float(g) / total, 4)) for n, g in ranked[:12]]


def check_report(report: dict[str, Any], blob: bytes) -> list[str]:
    """Hard checks a model must pass to be written (targets are reported, not enforced)."""
    problems = []
    eq = report["equivalence"]
    if eq["max_abs_diff"] > EQUIVALENCE_TOLERANCE:
        problems.append(f"ONNX and native scores differ by {eq['max_abs_diff']:.3g}")
    if eq["severity_disagreements"]:
        problems.append(f"{eq['severity_disagreements']} test rows change severity in ONNX")
    if len(blob) > MAX_MODEL_BYTES:
        problems.append(f"model is {len(blob)} bytes (> {MAX_MODEL_BYTES})")
    return problems


def build_manifest(report: dict[str, Any], blob: bytes, naive: dict[str, Any]) -> ModelManifest:
    import lightgbm
    import onnx
    import onnxmltools

    metrics = {k: v for k, v in report.items() if k not in ("thresholds", "data")}
    naive_metrics = {k: v for k, v in naive.items() if k != "thresholds"}
    naive_metrics["thresholds"] = naive["thresholds"]
    return ModelManifest(
        version=MODEL_VERSION,
        model_file=MODEL_FILE,
        sha256=hashlib.sha256(blob).hexdigest(),
        size=len(blob),
        feature_version=FEATURE_VERSION,
        features=SHIPPED.features,
        thresholds=Thresholds(**report["thresholds"]),
        input_name="input",
        output_name="probabilities",
        score_column=1,
        extra={
            "threshold_targets": {"suspicious_fpr": SUSPICIOUS_FPR, "malicious_fpr": MALICIOUS_FPR},
            "training": {
                "command": "python -m tools.ml.train",
                "seed": SEED,
                "lightgbm_params": LGBM_PARAMS,
                "max_rounds": MAX_ROUNDS,
                "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
                "left_out_features": list(CHECKSUM_FEATURES),
                "versions": {
                    "lightgbm": lightgbm.__version__,
                    "onnx": onnx.__version__,
                    "onnxmltools": onnxmltools.__version__,
                    "numpy": np.__version__,
                },
                "data": report["data"],
            },
            "metrics": metrics,
            "naive_baseline": naive_metrics,
        },
    )


def summary(report: dict[str, Any], title: str) -> str:
    th = report["thresholds"]
    lines = [
        f"== {title}: "
        + (f"{report['trees']} trees, " if "trees" in report else "")
        + (f"{report['features']} features, " if "features" in report else "")
        + f"thresholds suspicious={th['suspicious']:.6f} malicious={th['malicious']:.6f}"
    ]
    if "test" in report:
        t = report["test"]
        lines += [
            f"test ({t['benign']} benign / {t['malware']} malware): ROC AUC {t['roc_auc']:.4f}",
            f"  at suspicious threshold: detection {t['detection_at_suspicious']:.4f}, "
            f"FPR {t['fpr_at_suspicious']:.4f}",
            f"  at malicious threshold:  detection {t['detection_at_malicious']:.4f}, "
            f"FPR {t['fpr_at_malicious']:.4f}",
            f"  ROC: detection {t['roc_detection_at_1pct_fpr']:.4f} at 1% FPR, "
            f"{t['roc_detection_at_0.1pct_fpr']:.4f} at 0.1% FPR",
            f"  GNU ld (MinGW) malware: {t['gnu_ld_malware']} rows, detection at suspicious "
            f"{t['gnu_ld_detection_at_suspicious']:.4f}",
            f"  EXE: {t['exe_benign']} benign, FPR {t['exe_fpr_at_suspicious']:.4f} at "
            f"suspicious, {t['exe_fpr_at_malicious']:.4f} at malicious; {t['exe_malware']} "
            f"malware, detection {t['exe_detection_at_suspicious']:.4f} at suspicious",
            f"  DLL: {t['dll_benign']} benign, FPR {t['dll_fpr_at_suspicious']:.4f} at "
            f"suspicious, {t['dll_fpr_at_malicious']:.4f} at malicious; {t['dll_malware']} "
            f"malware, detection {t['dll_detection_at_suspicious']:.4f} at suspicious",
        ]
    for name, c in report["corpora"].items():
        lines.append(
            f"corpus {name}: {c['files']} files ({c['families']} families), "
            f"suspicious {c['suspicious']}, malicious {c['malicious']}, "
            f"highest score {c['max_score']:.4f}, not scored {c['not_scored']}"
        )
    h = report["holdout_total"]
    lines.append(
        f"corpus held-out halves: {h['files']} files, suspicious {h['suspicious']}, "
        f"malicious {h['malicious']}"
    )
    if "equivalence" in report:
        e = report["equivalence"]
        lines.append(
            f"ONNX vs native on test ({e['rows']} rows): max |diff| {e['max_abs_diff']:.3g}, "
            f"severity disagreements {e['severity_disagreements']}"
        )
    return "\n".join(lines)


def explore(data: Data, recipes: Sequence[Recipe] = EXPLORE, seed: int | None = None) -> list[str]:
    """One line per recipe: test figures, held-out halves, leave-one-source-out. ``seed``
    replaces LightGBM's seed (bagging and feature sampling) to see how much a figure moves."""
    if seed is not None:
        recipes = [
            Recipe(
                r.name,
                r.features,
                r.corpus_weight,
                r.source_weight,
                {**r.params, "seed": seed},
                r.monotone,
            )
            for r in recipes
        ]
    lines = [
        "recipe | features | test AUC | ROC det @1% / @0.1% FPR | at thresholds: det sus / mal,"
        " test FPR sus / mal | held-out halves sus / mal | unseen source (LOSO) sus / mal:"
        " per source"
    ]
    for r in recipes:
        model, _ = train_model(r, data)
        rep = evaluate(native_scorer(model, r.features), data)
        t, h = rep["test"], rep["holdout_total"]
        if r.corpus_weight is None and r.source_weight is None:
            lo = "(no corpus in training)"
        else:
            loso = leave_one_source_out(r, data)
            lo = (
                f"{sum(v['suspicious'] for v in loso.values())} / "
                f"{sum(v['malicious'] for v in loso.values())} of "
                f"{sum(v['files'] for v in loso.values())}: "
                + ", ".join(
                    f"{k} {v['suspicious']}/{v['malicious']} "
                    f"(max {v['max_score']:.3f}, th {v['suspicious_threshold']:.3f})"
                    for k, v in loso.items()
                )
            )
        lines.append(
            f"{r.name} | {len(r.features)} | {t['roc_auc']:.4f} | "
            f"{t['roc_detection_at_1pct_fpr']:.3f} / {t['roc_detection_at_0.1pct_fpr']:.3f} | "
            f"{t['detection_at_suspicious']:.3f} / {t['detection_at_malicious']:.3f}, "
            f"{t['fpr_at_suspicious']:.4f} / {t['fpr_at_malicious']:.4f} | "
            f"{h['suspicious']} / {h['malicious']} of {h['files']} | {lo}"
        )
        print(lines[-1], flush=True)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.ml.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--tables", type=Path, default=DEFAULT_TABLES_DIR)
    ap.add_argument("--wine-corpus", type=Path, default=DEFAULT_CORPUS_DIR)
    ap.add_argument("--extra-corpus", type=Path, default=DEFAULT_EXTRA_DIR)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="retrain and compare with the model in --out; write nothing",
    )
    mode.add_argument(
        "--explore",
        action="store_true",
        help="train the alternatives in EXPLORE, with leave-one-source-out; write nothing",
    )
    mode.add_argument(
        "--evaluate",
        type=Path,
        metavar="MODEL_DIR",
        help="score an existing model (manifest + ONNX) on today's data with its own "
        "thresholds; train and write nothing",
    )
    ap.add_argument(
        "--show-flagged", action="store_true", help="list the corpus files each model flags"
    )
    ap.add_argument(
        "--seed", type=int, help="with --explore: another LightGBM seed for every recipe"
    )
    ap.add_argument(
        "--recipe",
        action="append",
        metavar="TEXT",
        help="with --explore: only the recipes whose name contains TEXT (repeatable)",
    )
    args = ap.parse_args(argv)
    for d in (args.tables, args.wine_corpus, args.extra_corpus):
        if not d.is_dir():
            print(f"missing data folder {d} (see the module docstring)", file=sys.stderr)
            return 2

    if args.evaluate or args.explore:
        data = load_data(args.tables, args.wine_corpus, args.extra_corpus)
        if args.explore:
            chosen = [
                r for r in EXPLORE if not args.recipe or any(t in r.name for t in args.recipe)
            ]
            explore(data, chosen, args.seed)
            return 0
        manifest, blob = load_verified_model(
            args.evaluate, feature_version=FEATURE_VERSION, features=FEATURE_NAMES
        )
        rep = evaluate(onnx_scorer(blob, manifest.features), data, manifest.thresholds)
        print(summary(rep, f"model {manifest.version} ({manifest.sha256[:16]}...)"))
        if args.show_flagged:
            _print_flagged({"evaluated": rep})
        return 0

    report, blob, naive = train_all(args.tables, args.wine_corpus, args.extra_corpus)
    print(summary(naive, "naive (tables only, model 1.0.0's features, not shipped)"))
    print(summary(report, "shipped (tables + corpus train halves)"))
    print(f"model: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    if args.show_flagged:
        _print_flagged({"naive": naive, "shipped": report})
    problems = check_report(report, blob)
    if problems:
        for p in problems:
            print(f"FAILED: {p}", file=sys.stderr)
        return 1
    manifest = build_manifest(report, blob, naive)
    if args.check:
        shipped = load_manifest(args.out)
        same = shipped.sha256 == manifest.sha256
        print(
            f"check: retrained model {'IS' if same else 'is NOT'} byte-identical to the "
            f"shipped one ({shipped.sha256[:16]}...)"
        )
        same_metrics = shipped.extra.get("metrics") == json.loads(
            json.dumps(manifest.extra["metrics"])
        )
        print(f"check: metrics {'match' if same_metrics else 'DIFFER'}")
        return 0 if same and same_metrics else 1
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MODEL_FILE).write_bytes(blob)
    (args.out / MANIFEST_NAME).write_text(
        json.dumps(manifest.to_dict(), indent=1) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.out / MODEL_FILE} and {args.out / MANIFEST_NAME}")
    return 0


def _print_flagged(reports: Mapping[str, dict[str, Any]]) -> None:
    for title, rep in reports.items():
        for name, c in rep["corpora"].items():
            for fname, score in c["flagged"]:
                print(f"  {title} flags {name}: {fname} score={score}")


if __name__ == "__main__":
    sys.exit(main())
