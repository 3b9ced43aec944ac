"""Benchmark of the ML detector on real PE files: latency and findings.

    .venv/bin/python bench/ml_bench.py [--model DIR] [FOLDER ...]

Without FOLDER: the benign corpora (.corpus/benign-pe and .corpus/benign-pe-extra, see
tools/ml/train.py), reported per source and half. For every PE file (read through
mmap, as the scanner does) it times the detector's own path, header features plus one ONNX
run, and reports the median and 95th percentile per file. Also reports the one-time cost of
the first PE file (importing onnxruntime and creating the session) and the findings of the
model (default: the shipped one, resources/model), listing every flagged file. A file of
another FOLDER that is byte-identical to a corpus file says so ("trained on" when it is in a
train half: the shipped model has seen it).
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aegis_engine.ml.detector import MLDetector  # noqa: E402
from aegis_engine.ml.features import extract  # noqa: E402
from tools.ml.dataset import (  # noqa: E402
    DEFAULT_CORPUS_DIR,
    DEFAULT_EXTRA_DIR,
    CorpusEntry,
    index_corpora,
    iter_pe_files,
)


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "resources" / "model")
    ap.add_argument("folders", type=Path, nargs="*")
    args = ap.parse_args(argv)
    warnings: list[str] = []
    det = MLDetector.from_model_dir(args.model, warnings.append)
    print(
        f"model {det.manifest.version} sha256 {det.version[:16]}... "
        f"thresholds {det.manifest.thresholds.to_dict()}"
    )
    wine = DEFAULT_CORPUS_DIR if DEFAULT_CORPUS_DIR.is_dir() else None
    extra = DEFAULT_EXTRA_DIR if DEFAULT_EXTRA_DIR.is_dir() else None
    corpus = index_corpora(wine, extra) if wine or extra else []
    by_sha: dict[str, CorpusEntry] = {e.sha256: e for e in corpus}

    files: list[tuple[Path, str]] = []  # (file, group key)
    if args.folders:
        for folder in args.folders:
            files += [(p, str(folder)) for p in iter_pe_files(folder)]
    else:
        files = [(e.path, f"{e.source}/{e.split}") for e in corpus]
    if not files:
        print("no PE files found; build the corpora first (see tools/ml/train.py)")
        return 2

    rss0, t0 = rss_mib(), time.perf_counter()
    det.score_vectors([extract(files[0][0].read_bytes()).values])
    print(
        f"first PE file (import onnxruntime + session): {(time.perf_counter() - t0) * 1e3:.0f} ms,"
        f" RSS +{rss_mib() - rss0:.0f} MiB"
    )

    times: list[float] = []
    flagged: dict[str, list[str]] = {}
    counts: dict[str, list[int]] = {}
    for path, key in files:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            start = time.perf_counter()
            feats = extract(mm, len(mm))
            scores = det.score_vectors([feats.values]) if feats.ok else []
            times.append(time.perf_counter() - start)
            sha = hashlib.sha256(mm).hexdigest() if args.folders else ""
        c = counts.setdefault(key, [0, 0, 0, 0])
        c[0] += 1
        if not feats.ok:
            c[3] += 1
            continue
        finding = det.finding_for(scores[0]) if scores else None
        if finding is not None:
            c[1 if finding.name.endswith("Suspicious") else 2] += 1
            seen = by_sha.get(sha)
            note = ""
            if seen is not None:
                half = "trained on" if seen.split == "train" else "held out"
                note = f" (= corpus {seen.source}/{seen.path.name}, {half})"
            flagged.setdefault(key, []).append(
                f"{path if args.folders else path.name} {finding.name} {scores[0]:.4f}{note}"
            )

    times.sort()
    med = statistics.median(times) * 1e3
    p95 = times[int(0.95 * (len(times) - 1))] * 1e3
    print(
        f"features + inference per PE file over {len(times)} files: median {med:.3f} ms, "
        f"p95 {p95:.3f} ms, max {times[-1] * 1e3:.3f} ms"
    )
    for key, (n, sus, mal, bad) in sorted(counts.items()):
        print(f"{key}: {n} files, suspicious-only {sus}, malicious {mal}, not scored {bad}")
        for line in flagged.get(key, []):
            print(f"    {line}")
    for w in warnings:
        print(f"warning: {w}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
