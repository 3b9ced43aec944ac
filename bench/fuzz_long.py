#!/usr/bin/env python3
"""The long fuzzing run (issue 12): every target of tests/helpers/fuzz_targets.py for a time
budget, reporting executions and failures. The suite runs the same targets briefly
(tests/test_fuzz.py); a failure found here becomes a regression test there.

    .venv/bin/python bench/fuzz_long.py --seconds 120            # hypothesis, every target
    .venv/bin/python bench/fuzz_long.py --seconds 120 --engine atheris   # if installed

hypothesis (random, not derandomized) is the default engine; ``--engine atheris`` uses
coverage-guided libFuzzer through atheris (``pip install atheris``, not a project dependency)
with the same targets, one child process per target, seeded with the valid seeds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.fuzz_targets import SEEDS, TARGETS, mutate  # noqa: E402


def run_hypothesis(name: str, seconds: float) -> tuple[int, list[str]]:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    target, seed_names = TARGETS[name]
    strategy = st.one_of(
        st.builds(
            mutate,
            st.sampled_from([SEEDS[n] for n in seed_names]),
            st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=16),
            st.none() | st.integers(0, 1 << 16),
            st.binary(max_size=256),
        ),
        st.binary(max_size=16384),
    )
    count = 0
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:

        @settings(
            max_examples=200,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def one(data: bytes) -> None:
            nonlocal count
            count += 1
            with tempfile.TemporaryDirectory(prefix="aegis-fuzz-") as tmp:
                target(data, Path(tmp))

        try:
            one()
        except Exception:
            failures.append(traceback.format_exc())
            if len(failures) >= 3:
                break
    return count, failures


ATHERIS_CHILD = """
import sys, tempfile, atheris
from pathlib import Path
sys.path.insert(0, {tests!r})
with atheris.instrument_imports():
    import aegis_engine.scanning.containers, aegis_engine.ml.features  # noqa
    import aegis_engine.detectors.hashes, aegis_engine.bounded_io, aegis_engine.config  # noqa
    from helpers.fuzz_targets import TARGETS
target = TARGETS[{name!r}][0]
def one(data):
    with tempfile.TemporaryDirectory(prefix="aegis-fuzz-") as tmp:
        target(bytes(data), Path(tmp))
atheris.Setup(sys.argv, one)
atheris.Fuzz()
"""


def run_atheris(name: str, seconds: float) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory(prefix="aegis-fuzz-corpus-") as corpus:
        for seed in TARGETS[name][1]:
            Path(corpus, seed).write_bytes(SEEDS[seed])
        code = ATHERIS_CHILD.format(tests=str(ROOT / "tests"), name=name)
        r = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                f"-max_total_time={int(seconds)}",
                "-rss_limit_mb=2048",
                "-timeout=60",
                corpus,
            ],
            capture_output=True,
            text=True,
            cwd=corpus,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    runs = 0
    for line in r.stderr.splitlines():
        if line.startswith("Done ") and "runs" in line:
            runs = int(line.split()[1])
    failures = [] if r.returncode == 0 else [r.stderr[-4000:]]
    return runs, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60, help="time budget per target")
    ap.add_argument("--engine", choices=("hypothesis", "atheris"), default="hypothesis")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="(repeatable)")
    args = ap.parse_args()
    os.environ.setdefault("AEGIS_HOME", tempfile.mkdtemp(prefix="aegis-fuzz-home-"))
    run = run_hypothesis if args.engine == "hypothesis" else run_atheris
    print(
        f"engine: {args.engine}, {args.seconds:.0f} s per target, python {sys.version.split()[0]}"
    )
    print(f"{'target':<12} {'executions':>10} {'exec/s':>8}  failures")
    bad = 0
    for name in args.target or sorted(TARGETS):
        t = time.monotonic()
        count, failures = run(name, args.seconds)
        took = time.monotonic() - t
        print(f"{name:<12} {count:>10} {count / took:>8.1f}  {len(failures)}", flush=True)
        for f in failures:
            print(f, file=sys.stderr)
        bad += len(failures)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
