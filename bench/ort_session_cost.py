#!/usr/bin/env python3
"""What the ML model's onnxruntime session costs in memory, per ``SessionOptions`` variant,
and proof that every variant gives the same scores.

    .venv/bin/python bench/ort_session_cost.py [--rounds 3] [--pe-glob '/root/.pyenv/**/*.exe']

Each variant runs in a fresh interpreter (rounds interleaved): import onnxruntime (the way
Aegis does, telemetry off), make the session from the bundled model's verified bytes, score
every PE file found (features as the scanner extracts them), in batches of one as a worker
does. PSS / anonymous / file-backed memory of that process from ``/proc/self/smaps_rollup``
(MiB) after the import, after the session, and after scoring; the scores' largest difference
from the variant ``before`` (the options of main: one thread each, no memory arena).
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

VARIANTS: dict[str, dict[str, object]] = {
    "before": {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "enable_cpu_mem_arena": False,
    },
    "lean": {},  # aegis_engine.ml.runtime.SESSION_OPTIONS (what ships now)
    "lean+noopt": {"graph_optimization_level": "ORT_DISABLE_ALL"},
    "lean+noprepack": {"config:session.disable_prepacking": "1"},
    "lean+env-alloc": {"config:session.use_env_allocators": "1"},
}

CHILD = r"""
import json, sys
from pathlib import Path
from aegis_engine.ml.features import FEATURE_NAMES, FEATURE_VERSION, extract
from aegis_engine.ml.manifest import load_verified_model
from aegis_engine.ml import runtime

def mem():
    out = {}
    for line in open("/proc/self/smaps_rollup"):
        key, _, value = line.partition(":")
        if key in ("Pss", "Pss_Anon", "Pss_File", "Rss"):
            out[key] = int(value.split()[0]) / 1024
    return out

args = json.loads(sys.argv[1])
manifest, blob = load_verified_model(Path(args["model"]), feature_version=FEATURE_VERSION,
                                     features=FEATURE_NAMES)
rows = []
for p in args["files"]:
    data = Path(p).read_bytes()
    r = extract(data, len(data))
    if r.ok:
        rows.append(r.values)
base = mem()
runtime.import_onnxruntime()
imported = mem()
opts = dict(runtime.SESSION_OPTIONS) if args["variant_base"] else {}
opts.update(args["options"])
session = runtime.inference_session(blob, opts)
made = mem()
import numpy as np
from aegis_engine.ml.features import columns_for
cols = list(columns_for(manifest.features))
scores = []
for row in rows:
    x = np.asarray([row], dtype=np.float32)[:, cols]
    out = session.run([manifest.output_name], {manifest.input_name: x})[0]
    scores.append(float(out[0, manifest.score_column]))
scored = mem()
print(json.dumps({"base": base, "imported": imported, "session": made, "scored": scored,
                  "scores": scores}))
"""


def run(variant: str, files: list[str], model: Path) -> dict[str, object]:
    options = VARIANTS[variant]
    arg = {
        "model": str(model),
        "files": files,
        "options": options,
        "variant_base": variant != "before",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(arg)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _diffs(scores: object, ref: list[float]) -> list[float]:
    assert isinstance(scores, list)
    return [abs(a - b) for a, b in zip(scores, ref, strict=True)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--pe-glob",
        action="append",
        default=None,
        help="PE files to score (default: the .exe/.dll under /root/.pyenv and clamav-testfiles)",
    )
    ap.add_argument("--model", type=Path, default=ROOT / "resources" / "model")
    args = ap.parse_args()
    globs = args.pe_glob or [
        "/root/.pyenv/**/*.exe",
        "/usr/share/clamav-testfiles/*.exe",
        "/usr/share/clamav-testfiles/*.dll",
    ]
    files = sorted({f for g in globs for f in glob.glob(g, recursive=True)})
    results: dict[str, list[dict[str, object]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]
        for variant in order:
            results[variant].append(run(variant, files, args.model))
    ref = results["before"][0]["scores"]
    assert isinstance(ref, list)
    print(f"{len(files)} files, {len(ref)} scored as PE; {args.rounds} rounds, medians, MiB\n")
    print("| variant | PSS after import | PSS with session | PSS after scoring | "
          "anon after scoring | session cost (PSS) | max score difference vs before |")
    print("|---|---|---|---|---|---|---|")
    for variant, runs in results.items():

        def med(stage: str, key: str = "Pss", runs: list[dict[str, object]] = runs) -> float:
            return statistics.median(float(r[stage][key]) for r in runs)  # type: ignore[index]

        diffs = [max(_diffs(r["scores"], ref), default=0.0) for r in runs]
        print(
            f"| {variant} | {med('imported'):.1f} | {med('session'):.1f} | {med('scored'):.1f} "
            f"| {med('scored', 'Pss_Anon'):.1f} | {med('scored') - med('imported'):.1f} "
            f"| {max(diffs):.2g} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
