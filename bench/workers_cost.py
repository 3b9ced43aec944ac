#!/usr/bin/env python3
"""The cost of isolation: scanning many small files in worker processes (what ``Engine.scan``
does) against the same scanner run on threads in one process (the design before workers),
and workers forked from the preload server (``pool``, issue 13) against workers that each
load their own content (``pool-own``, ``WorkerConfig.share_content=False``).

    .venv/bin/python bench/workers_cost.py [--files 50000] [--rounds 3] [--jobs 2]
        [--before /tmp/aegis-before]

Both modes use the bundled defaults, no scan cache, the same walk, the same FileScanner and
the same chunks (32 files); only the hand-off differs (pickled batches over a pipe to worker
processes, against futures on a thread pool). Rounds are interleaved; medians are reported.
Each run is a fresh process (``--mode``); the parent samples the PSS of that process and all
its descendants (``/proc/PID/smaps_rollup``) every 50 ms and reports the peak of the sum.
With ``--before`` (a source checkout of older code, e.g. a ``git archive``), ``pool-before``
is ``pool`` run with that checkout first on ``PYTHONPATH``: the same bench, the old engine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_tree(root: Path, files: int) -> None:
    rng = random.Random(13)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"import", b"return", b"class", b"data"]
    for i in range(files):
        folder = root / f"d{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(200, 4000)
        if i % 3:
            body = b" ".join(rng.choice(words) for _ in range(size // 6))
        else:
            body = rng.randbytes(size)
        (folder / f"f{i:06d}.{'txt' if i % 3 else 'bin'}").write_bytes(body)


def _cpu_self() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pool(tree: str, jobs: int, share: bool = True) -> dict[str, float]:
    """Through the engine's worker pool: forked from the preload server (``share``), or each
    worker loading its own content (the design before the server)."""
    from dataclasses import replace

    from aegis_engine import Engine

    engine = Engine()
    try:
        options = engine.default_options(jobs=jobs, use_cache=False)
        pool = engine.worker_pool(options.limits)
        pool.config = replace(pool.config, share_content=share)
        cpu0 = _cpu_self()
        started = time.perf_counter()
        summary = engine.scan([tree], options)
        took = time.perf_counter() - started
        # The workers are still alive (kept warm): their CPU, all of it spent on this scan
        # but for loading the detectors, which the untimed warm-up run below also pays.
        workers = sum(_cpu_of(w.process.pid) for w in pool.processes)
        if pool.server is not None:  # loaded the content once for all the workers
            workers += _cpu_of(pool.server.pid)
        cpu = _cpu_self() - cpu0 + workers
    finally:
        engine.close()
    return {"seconds": took, "files": summary.files, "cpu": cpu}


def run_threads(tree: str, jobs: int) -> dict[str, float]:
    """The pre-worker design: one FileScanner shared by a thread pool, chunks of 32."""
    import itertools
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from aegis_engine import Engine
    from aegis_engine.scanning.scanner import FileScanner
    from aegis_engine.scanning.walk import FileEntry, walk

    engine = Engine()
    tmp = Path(tempfile.mkdtemp(prefix="aegis-bench-"))
    try:
        options = engine.default_options(jobs=jobs, use_cache=False)
        cpu0 = _cpu_self()
        started = time.perf_counter()
        scanner = FileScanner(engine.detectors, options, tmp)
        files = (i for i in walk([tree]) if isinstance(i, FileEntry))
        count = 0

        def chunk_scan(entries: list[FileEntry]) -> int:
            for e in entries:
                scanner.scan_file(e)
            return len(entries)

        with ThreadPoolExecutor(jobs) as pool:
            futures = []
            while chunk := list(itertools.islice(files, 32)):
                futures.append(pool.submit(chunk_scan, chunk))
            for f in futures:
                count += f.result()
        took = time.perf_counter() - started
        cpu = _cpu_self() - cpu0
    finally:
        engine.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"seconds": took, "files": count, "cpu": cpu}


def tree_pss_kib(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        return 0
    total = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            with open(f"/proc/{p.pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def measure(
    mode: str, tree: str, jobs: int, home: str, before: str | None = None
) -> dict[str, float]:
    env = {**os.environ, "AEGIS_HOME": home}
    env.pop("PYTHONPATH", None)
    if mode == "pool-before" and before:
        env["PYTHONPATH"] = before
        mode = "pool"
    cmd = [sys.executable, __file__, "--mode", mode, "--jobs", str(jobs), tree]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_pss_kib(proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    result["peak_pss_mib"] = peak / 1024
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", nargs="?")
    parser.add_argument("--mode", choices=["pool", "pool-own", "threads"])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--before", help="source checkout of older code: adds pool-before")
    args = parser.parse_args()
    if args.mode:
        if args.mode == "threads":
            print(json.dumps(run_threads(args.tree, args.jobs)))
        else:
            print(json.dumps(run_pool(args.tree, args.jobs, share=args.mode == "pool")))
        return 0
    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        tree = Path(args.tree) if args.tree else Path(tmp) / "tree"
        if not args.tree:
            make_tree(tree, args.files)
        home = str(Path(tmp) / "home")
        measure("pool", str(tree), args.jobs, home)  # untimed warm-up: rules compiled, cached
        modes: tuple[str, ...] = ("threads", "pool-own", "pool")
        before = str(Path(args.before).resolve()) if args.before else None
        if before:
            modes = (*modes, "pool-before")
            measure("pool-before", str(tree), args.jobs, home + "-before", before)  # warm-up
        results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
        for rnd in range(args.rounds):
            for mode in modes if rnd % 2 == 0 else modes[::-1]:
                where = home + "-before" if mode == "pool-before" else home
                r = measure(mode, str(tree), args.jobs, where, before)
                r["load"] = os.getloadavg()[0]
                results[mode].append(r)
        med = {
            m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in results.items()
        }
        print(f"files: {int(med['pool']['files'])}, jobs: {args.jobs}, rounds: {args.rounds}")
        for mode, figures in med.items():
            rate = figures["files"] / figures["seconds"]
            print(
                f"{mode:8s} {figures['seconds']:7.2f} s  {rate:8.0f} files/s  "
                f"CPU {figures['cpu']:7.2f} s  "
                f"peak PSS (all processes) {figures['peak_pss_mib']:6.1f} MiB"
            )
        for mode in modes[1:]:
            ratio = med[mode]["seconds"] / med["threads"]["seconds"]
            cpu_ratio = med[mode]["cpu"] / med["threads"]["cpu"]
            print(f"{mode} / threads: wall time {ratio:.2f}x, CPU {cpu_ratio:.2f}x")
        pss = med["pool"]["peak_pss_mib"] / med["pool-own"]["peak_pss_mib"]
        print(f"pool / pool-own: peak PSS {pss:.2f}x")
        if before:
            per = [
                (a["seconds"] / b["seconds"], a["cpu"] / b["cpu"])
                for a, b in zip(results["pool"], results["pool-before"], strict=True)
            ]
            print(
                "pool / pool-before per round: wall "
                + ", ".join(f"{w:.2f}" for w, _ in per)
                + "; CPU "
                + ", ".join(f"{c:.2f}" for _, c in per)
            )
        loads = [r["load"] for rs in results.values() for r in rs]
        print(f"load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
