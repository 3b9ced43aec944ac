#!/usr/bin/env python3
"""Issue 13: workers forked from a preload server (content loaded once, shared) against
workers that each load their own content (the code before), side by side in one run, with
``yara -r -p JOBS`` over the same tree and rules as the reference.

    git archive BASE_COMMIT | (mkdir -p /tmp/aegis-before && tar -x -C /tmp/aegis-before)
    .venv/bin/python bench/preload_cost.py --before /tmp/aegis-before [--tree bench/.work/tree]
        [--rules ../shared/rules/reversinglabs/yara] [--rounds 3] [--jobs 2]

Both Aegis versions run with this venv's Python and libraries; ``--before`` is a source
checkout put first on ``PYTHONPATH`` (the processes run from ``/``, so the working tree is not
on the path), so only the engine's code differs. Per round, in an order that alternates:
``yara``, ``aegis`` before, ``aegis`` now with the RULES only (``--no-bundled --no-cache
--rules``: the comparison of issue 2's target a), then both Aegis versions with the bundled
defaults (``--no-cache``). Each process is measured whole by ``bench/run.py``'s ``measure``:
wall time, CPU of the process and of every descendant (the scan workers and, now, their
preload server), peak PSS summed over the process and all its descendants every 100 ms.
Every Aegis run gets its own AEGIS_HOME whose rule cache an untimed warm-up filled.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEFAULT_RULES, DEFAULT_TREE, Run, measure, prepare_rules

MAIN = "import sys; from aegis_engine.cli import main; sys.exit(main())"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="source checkout of the old code")
    ap.add_argument("--tree", type=Path, default=DEFAULT_TREE)
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument(
        "--only",
        choices=("all", "rules", "bundled"),
        default="all",
        help="run only the rules-only or only the bundled-defaults comparison (with yara)",
    )
    args = ap.parse_args()
    tree = str(args.tree.resolve())
    before = str(args.before.resolve())
    work = Path(tempfile.mkdtemp(prefix="aegis-preload-bench-"))
    try:
        return _run(args, tree, before, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, tree: str, before: str, work: Path) -> int:
    outdir = work / "out"
    outdir.mkdir()
    rules = prepare_rules(args.rules.resolve(), work)

    def env(version: str, home: str) -> dict[str, str]:
        e = dict(os.environ)
        e["AEGIS_HOME"] = str(work / f"home-{version}-{home}")
        e.pop("AEGIS_RESOURCES", None)
        e.pop("PYTHONPATH", None)
        if version == "before":
            e["PYTHONPATH"] = before
        return e

    py = sys.executable
    cmds: dict[str, tuple[list[str], dict[str, str] | None]] = {
        "yara": (["yara", "-r", "-p", str(args.jobs), "-C", rules["compiled"], tree], None),
    }
    for version in ("before", "now"):
        cmds[f"rules.{version}"] = (
            [py, "-c", MAIN, "scan", "--json", "--no-bundled", "--no-cache", "--jobs",
             str(args.jobs), "--rules", rules["aegis_rules"], tree],
            env(version, "rules"),
        )  # fmt: skip
        cmds[f"bundled.{version}"] = (
            [py, "-c", MAIN, "scan", "--json", "--no-cache", "--jobs", str(args.jobs), tree],
            env(version, "bundled"),
        )
    if args.only != "all":
        cmds = {k: v for k, v in cmds.items() if k == "yara" or k.startswith(args.only + ".")}
    small = str(Path(tree) / "clamav-testfiles")
    old_cwd = os.getcwd()
    os.chdir("/")  # neither checkout's folder on sys.path
    try:
        for key, (cmd, e) in cmds.items():  # untimed: rules compiled into each home's cache
            r = measure(f"warmup.{key}", 0, [*cmd[:-1], small], outdir, e)
            print(f"warm-up {key}: exit {r.rc} in {r.wall:.1f} s", flush=True)
            if r.rc not in (0, 1):
                print(Path(r.stderr).read_text()[-2000:], file=sys.stderr)
                return 3
        runs: dict[str, list[Run]] = {k: [] for k in cmds}
        for rnd in range(1, args.rounds + 1):
            order = list(cmds)
            if rnd % 2 == 0:
                order.reverse()
            for key in order:
                cmd, e = cmds[key]
                r = measure(key, rnd, cmd, outdir, e)
                runs[key].append(r)
                print(
                    f"[round {rnd}] {key:<15} wall {r.wall:7.2f} s  CPU {r.cpu:7.2f} s  "
                    f"peak PSS (all processes) {r.pss_tree_mb:6.1f} MB  exit {r.rc}  "
                    f"load {r.loadavg_before:.1f}",
                    flush=True,
                )
    finally:
        os.chdir(old_cwd)
    report(runs, args)
    return 0


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    def med(key: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in runs[key])

    def ratio(num: str, den: str, attr: str = "wall") -> str:
        pairs = zip(runs[num], runs[den], strict=True)
        per = [getattr(a, attr) / getattr(b, attr) for a, b in pairs]
        return f"{statistics.median(per):.2f} ({min(per):.2f}–{max(per):.2f})"

    print(f"\nrounds {args.rounds}, jobs {args.jobs}; medians (MB = 10^6 bytes)\n")
    print("| run | wall s | CPU s (all processes) | peak PSS MB (all processes) |")
    print("|---|---|---|---|")
    for key in runs:
        print(
            f"| {key} | {med(key, 'wall'):.2f} | {med(key, 'cpu'):.2f} "
            f"| {med(key, 'pss_tree_mb'):.1f} |"
        )
    print()
    for version in ("before", "now"):
        if f"rules.{version}" not in runs:
            continue
        print(
            f"- rules.{version} / yara: wall {ratio(f'rules.{version}', 'yara')}, "
            f"CPU {ratio(f'rules.{version}', 'yara', 'cpu')}"
        )
    for what in ("rules", "bundled"):
        if f"{what}.now" not in runs:
            continue
        print(
            f"- {what}: now / before: wall {ratio(f'{what}.now', f'{what}.before')}, "
            f"CPU {ratio(f'{what}.now', f'{what}.before', 'cpu')}, "
            f"peak PSS {ratio(f'{what}.now', f'{what}.before', 'pss_tree_mb')}"
        )


if __name__ == "__main__":
    sys.exit(main())
