"""Trains the PE header model, converts it to ONNX, checks it and writes resources/model.

    python -m aegis_engine.ml.train            # retrain and write resources/model/
    python -m aegis_engine.ml.train --check    # retrain and compare with the shipped model

Needs the ``dev`` extra (lightgbm, onnx, onnxmltools, scikit-learn), the shared tables
(``../shared/datasets/pe-headers``) and both benign corpora:

    bash ../shared/corpus/get-benign-pe.sh .corpus/benign-pe
    bash bench/ml_get_mingw_pe.sh .corpus/benign-pe-mingw

Everything is fixed: hash-based splits (see :mod:`.dataset`), one seed, one thread,
LightGBM's deterministic mode. Two models are trained:

* ``naive``: the tables only. Its figures are reported (the model card shows what it does to
  non-Microsoft software) but it is not shipped;
* ``shipped``: the tables plus the "train" half of each benign corpus (benign rows, weighted
  by ``CORPUS_WEIGHT``). Its false positives are measured on the corpora's "holdout" halves.

Thresholds are chosen on the validation split: ``suspicious`` is the lowest score at which at
most 1% of validation benign rows score at or above it, ``malicious`` the same at 0.1%.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .dataset import (
    DEFAULT_CORPUS_DIR,
    DEFAULT_TABLES_DIR,
    REPO_ROOT,
    CorpusFile,
    TableRow,
    TableStats,
    load_corpus,
    load_tables,
)
from .features import FEATURE_NAMES, FEATURE_VERSION, FeatureStatus
from .manifest import MANIFEST_NAME, ModelManifest, Thresholds, load_manifest

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MODEL_VERSION = "1.0.0"
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
DEFAULT_MINGW_DIR = REPO_ROOT / ".corpus" / "benign-pe-mingw"

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


@dataclass
class Split:
    x: F32
    y: I64
    gnu_ld: npt.NDArray[np.bool_]
    """Rows whose MajorLinkerVersion is 2 (GNU ld, i.e. MinGW-built)."""
    dll: npt.NDArray[np.bool_]
    """Rows with IMAGE_FILE_DLL set."""


def _split(rows: Sequence[TableRow], name: str) -> Split:
    chosen = [r for r in rows if r.split == name]
    x = np.asarray([r.vector for r in chosen], dtype=np.float32)
    y = np.asarray([r.label for r in chosen], dtype=np.int64)
    return Split(x, y, x[:, _GNU_LD] == 2, x[:, _DLL] == 1)


def pick_threshold(benign_scores: npt.ArrayLike, max_fpr: float) -> float:
    """The lowest float32 score t such that at most ``max_fpr`` of ``benign_scores`` are >= t."""
    s = np.sort(np.asarray(benign_scores, dtype=np.float32))[::-1]
    allowed = math.floor(max_fpr * len(s) + 1e-9)
    if allowed >= len(s):
        return 0.0
    return float(np.nextafter(s[allowed], np.float32(np.inf)))


def rate(mask: npt.NDArray[np.bool_]) -> float:
    return float(mask.mean()) if mask.size else float("nan")


def tpr_at_fpr(y: I64, scores: F32, max_fpr: float) -> float:
    """Best detection rate on (y, scores) with a false-positive rate <= max_fpr (ROC point)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, scores)
    return float(tpr[fpr <= max_fpr].max())


def fit(x: F32, y: I64, weight: F64, val: Split, max_rounds: int = MAX_ROUNDS) -> Any:
    """A LightGBM booster cut to its best iteration on the validation split."""
    import lightgbm as lgb

    booster = lgb.train(
        LGBM_PARAMS,
        lgb.Dataset(x, label=y, weight=weight, free_raw_data=False),
        num_boost_round=max_rounds,
        valid_sets=[lgb.Dataset(val.x, label=val.y)],
        callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def native_scores(model: Any, x: F32) -> F64:
    return np.asarray(model.predict(x), dtype=np.float64)


def to_onnx(model: Any) -> bytes:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(
        model,
        name="aegis-pe-header-gbdt",
        initial_types=[("input", FloatTensorType([None, len(FEATURE_NAMES)]))],
        zipmap=False,
        target_opset=15,
    )
    onx.doc_string = f"Aegis PE header model {MODEL_VERSION}, features v{FEATURE_VERSION}"
    blob: bytes = onx.SerializeToString()
    return blob


def onnx_scores(blob: bytes, x: F32) -> F32:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    out = sess.run(["probabilities"], {"input": x})[0]
    return np.asarray(out[:, 1], dtype=np.float32)


def corpus_matrix(files: Sequence[CorpusFile]) -> F32:
    ok = [f.vector for f in files if f.status is FeatureStatus.OK]
    return np.asarray(ok, dtype=np.float32).reshape(len(ok), len(FEATURE_NAMES))


def evaluate(
    blob: bytes,
    val: Split,
    test: Split,
    corpora: dict[str, list[CorpusFile]],
) -> dict[str, Any]:
    """Thresholds from validation, then every figure the model card reports."""
    val_scores = onnx_scores(blob, val.x)
    th = Thresholds(
        suspicious=pick_threshold(val_scores[val.y == 0], SUSPICIOUS_FPR),
        malicious=pick_threshold(val_scores[val.y == 0], MALICIOUS_FPR),
    )
    s = onnx_scores(blob, test.x)
    from sklearn.metrics import roc_auc_score

    mal, ben = test.y == 1, test.y == 0
    out: dict[str, Any] = {
        "thresholds": th.to_dict(),
        "validation": {
            "benign": int((val.y == 0).sum()),
            "malware": int((val.y == 1).sum()),
            "roc_auc": float(roc_auc_score(val.y, val_scores)),
            "fpr_suspicious": rate(val_scores[val.y == 0] >= th.suspicious),
            "fpr_malicious": rate(val_scores[val.y == 0] >= th.malicious),
        },
        "test": {
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
        },
        "corpora": {},
    }
    for cname, files in corpora.items():
        for part in ("train", "holdout"):
            chosen = [f for f in files if f.split == part]
            ok = [f for f in chosen if f.status is FeatureStatus.OK]
            scores = onnx_scores(blob, corpus_matrix(ok)) if ok else np.zeros(0, np.float32)
            out["corpora"][f"{cname}/{part}"] = {
                "files": len(chosen),
                "families": len({f.family for f in chosen}),
                "not_scored": len(chosen) - len(ok),
                "suspicious": int((scores >= th.suspicious).sum()),
                "malicious": int((scores >= th.malicious).sum()),
                "flagged": sorted(
                    (f.name, round(float(sc), 4))
                    for f, sc in zip(ok, scores, strict=True)
                    if sc >= th.suspicious
                ),
            }
    return out


def equivalence(model: Any, blob: bytes, test: Split, th: Thresholds) -> dict[str, Any]:
    native = native_scores(model, test.x)
    onnx = onnx_scores(blob, test.x).astype(np.float64)
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
    tables_dir: Path, corpus_dirs: dict[str, Path], log: Any = print
) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """Both models; returns (shipped model's report, its ONNX bytes, naive report)."""
    t0 = time.perf_counter()
    rows, stats = load_tables(tables_dir)
    train, val, test = (_split(rows, n) for n in ("train", "val", "test"))
    corpora = {name: load_corpus(path) for name, path in corpus_dirs.items()}
    log(
        f"data: {len(rows)} distinct table rows, corpora "
        + ", ".join(f"{k}={len(v)}" for k, v in corpora.items())
        + f" ({time.perf_counter() - t0:.1f}s)"
    )

    # Naive: the tables alone.
    naive = fit(train.x, train.y, np.ones(len(train.y)), val)
    naive_blob = to_onnx(naive)
    naive_report = evaluate(naive_blob, val, test, corpora)
    naive_report["trees"] = int(naive.num_trees())
    log(f"naive model: {naive_report['trees']} trees ({time.perf_counter() - t0:.1f}s)")

    # Shipped: tables plus the train half of each corpus as benign rows.
    extra = [f for files in corpora.values() for f in files if f.split == "train"]
    cx = corpus_matrix(extra)
    x = np.concatenate([train.x, cx])
    y = np.concatenate([train.y, np.zeros(len(cx), dtype=np.int64)])
    w = np.concatenate([np.ones(len(train.y)), np.full(len(cx), CORPUS_WEIGHT)])
    model = fit(x, y, w, val)
    blob = to_onnx(model)
    report = evaluate(blob, val, test, corpora)
    report["trees"] = int(model.num_trees())
    th = Thresholds(**report["thresholds"])
    report["equivalence"] = equivalence(model, blob, test, th)
    naive_report["equivalence"] = equivalence(naive, naive_blob, test, th)
    log(f"shipped model: {report['trees']} trees ({time.perf_counter() - t0:.1f}s)")

    report["data"] = _data_facts(rows, stats, tables_dir, corpora, len(cx))
    report["feature_importance_gain"] = _importance(model)
    return report, blob, naive_report


def _data_facts(
    rows: Sequence[TableRow],
    stats: TableStats,
    tables_dir: Path,
    corpora: dict[str, list[CorpusFile]],
    corpus_train_rows: int,
) -> dict[str, Any]:
    from .dataset import TABLES

    splits: dict[str, dict[str, int]] = {}
    for r in rows:
        d = splits.setdefault(r.split, {"benign": 0, "malware": 0})
        d["malware" if r.label else "benign"] += 1
    return {
        "tables": {
            name: hashlib.sha256((tables_dir / name).read_bytes()).hexdigest() for name, _ in TABLES
        },
        "rows_read": stats.rows_read,
        "rows_invalid": stats.invalid,
        "rows_duplicate": stats.duplicates,
        "keys_with_conflicting_labels": stats.conflicting_keys,
        "distinct_rows": len(rows),
        "splits": splits,
        "corpus_files": {k: len(v) for k, v in corpora.items()},
        "corpus_train_rows": corpus_train_rows,
        "corpus_weight": CORPUS_WEIGHT,
    }


def _importance(model: Any) -> list[tuple[str, float]]:
    gains = model.feature_importance(importance_type="gain")
    total = float(np.sum(gains)) or 1.0
    ranked = sorted(zip(FEATURE_NAMES, gains, strict=True), key=lambda t: -float(t[1]))
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
        features=FEATURE_NAMES,
        thresholds=Thresholds(**report["thresholds"]),
        input_name="input",
        output_name="probabilities",
        score_column=1,
        extra={
            "threshold_targets": {"suspicious_fpr": SUSPICIOUS_FPR, "malicious_fpr": MALICIOUS_FPR},
            "training": {
                "command": "python -m aegis_engine.ml.train",
                "seed": SEED,
                "lightgbm_params": LGBM_PARAMS,
                "max_rounds": MAX_ROUNDS,
                "early_stopping_rounds": EARLY_STOPPING_ROUNDS,
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
    t, th = report["test"], report["thresholds"]
    lines = [
        f"== {title}: {report['trees']} trees, thresholds suspicious="
        f"{th['suspicious']:.6f} malicious={th['malicious']:.6f}",
        f"test ({t['benign']} benign / {t['malware']} malware): ROC AUC {t['roc_auc']:.4f}",
        f"  at suspicious threshold: detection {t['detection_at_suspicious']:.4f}, "
        f"FPR {t['fpr_at_suspicious']:.4f}",
        f"  at malicious threshold:  detection {t['detection_at_malicious']:.4f}, "
        f"FPR {t['fpr_at_malicious']:.4f}",
        f"  ROC: detection {t['roc_detection_at_1pct_fpr']:.4f} at 1% FPR, "
        f"{t['roc_detection_at_0.1pct_fpr']:.4f} at 0.1% FPR",
        f"  GNU ld (MinGW) malware: {t['gnu_ld_malware']} rows, detection at suspicious "
        f"{t['gnu_ld_detection_at_suspicious']:.4f}",
        f"  EXE: {t['exe_benign']} benign, FPR {t['exe_fpr_at_suspicious']:.4f} at suspicious, "
        f"{t['exe_fpr_at_malicious']:.4f} at malicious; {t['exe_malware']} malware, detection "
        f"{t['exe_detection_at_suspicious']:.4f} at suspicious",
        f"  DLL: {t['dll_benign']} benign, FPR {t['dll_fpr_at_suspicious']:.4f} at suspicious, "
        f"{t['dll_fpr_at_malicious']:.4f} at malicious; {t['dll_malware']} malware, detection "
        f"{t['dll_detection_at_suspicious']:.4f} at suspicious",
    ]
    for name, c in report["corpora"].items():
        lines.append(
            f"corpus {name}: {c['files']} files ({c['families']} families), "
            f"suspicious {c['suspicious']}, malicious {c['malicious']}, "
            f"not scored {c['not_scored']}"
        )
    if "equivalence" in report:
        e = report["equivalence"]
        lines.append(
            f"ONNX vs native on test ({e['rows']} rows): max |diff| {e['max_abs_diff']:.3g}, "
            f"severity disagreements {e['severity_disagreements']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m aegis_engine.ml.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--tables", type=Path, default=DEFAULT_TABLES_DIR)
    ap.add_argument("--wine-corpus", type=Path, default=DEFAULT_CORPUS_DIR)
    ap.add_argument("--mingw-corpus", type=Path, default=DEFAULT_MINGW_DIR)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument(
        "--check",
        action="store_true",
        help="retrain and compare with the model in --out; write nothing",
    )
    ap.add_argument(
        "--show-flagged", action="store_true", help="list the corpus files each model flags"
    )
    args = ap.parse_args(argv)
    for d in (args.tables, args.wine_corpus, args.mingw_corpus):
        if not d.is_dir():
            print(f"missing data folder {d} (see the module docstring)", file=sys.stderr)
            return 2

    report, blob, naive = train_all(
        args.tables, {"wine": args.wine_corpus, "mingw": args.mingw_corpus}
    )
    print(summary(naive, "naive (tables only, not shipped)"))
    print(summary(report, "shipped (tables + corpus train halves)"))
    print(f"model: {len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}")
    if args.show_flagged:
        for title, rep in (("naive", naive), ("shipped", report)):
            for name, c in rep["corpora"].items():
                for fname, score in c["flagged"]:
                    print(f"  {title} flags {name}: {fname} score={score}")
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


if __name__ == "__main__":
    sys.exit(main())
