#!/usr/bin/env python3
"""What Aegis opens (issue 17): ClamAV's own test files with one body rule, side by side with
``clamscan`` holding the same one body signature, and the scan time of a benign tree before and
after (a baseline ``aegis`` from another checkout against this one, interleaved rounds).

    .venv/bin/python bench/formats.py [--baseline /path/to/other/.venv/bin/aegis] [--tree DIR]

a) ``aegis scan --json --no-bundled --no-cache --rules T.yar /usr/share/clamav-testfiles``
   with ``rule T { strings: $a = "<the test program's body string>" condition: $a }``, and
   ``clamscan -r --no-summary -d T.ndb`` with the same string as a body signature; per file:
   found by each. The string is assembled at run time (Aegis never carries it as plain text).
b) with ``--baseline``: ``aegis scan --json --no-cache TREE`` (bundled defaults) by the baseline
   and by this checkout, alternating which goes first, ``--rounds`` times; the median ratio.
c) with ``--pe-probe DIR``: the cost of the runtime-packer check every PE goes through
   (``unpack_packer.packer_of``, headers and 16 bytes at the entry point), per PE file found
   under DIR, and how many it flags.

Only the standard library is used. Every Aegis run gets a private AEGIS_HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTFILES = Path("/usr/share/clamav-testfiles")
ROOT = Path(__file__).resolve().parent.parent
BODY = "CLA" + "Message" + "BoxA"


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return time.monotonic() - started, done.stdout


def _aegis_found(stdout: str) -> tuple[set[str], list[str]]:
    found: set[str] = set()
    incomplete: list[str] = []
    for line in stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        path = obj.get("path", "")
        top = Path(path.split("!", 1)[0]).name
        if any(d.get("name") == "T" for d in obj.get("detections", [])):
            found.add(top)
        if obj.get("verdict") in ("incomplete", "error"):
            incomplete.append(f"{path.replace(str(TESTFILES) + '/', '')}: {obj.get('problems')}")
    return found, incomplete


def _clamscan_found(stdout: str) -> set[str]:
    return {
        Path(line.split(":", 1)[0]).name for line in stdout.splitlines() if line.endswith("FOUND")
    }


def _packers_extra(aegis: str) -> str:
    """Whether the Python that runs ``aegis`` has the Unicorn emulator (the packers extra)."""
    python = Path(aegis).with_name("python")
    probe = "import importlib.util as u; print(u.find_spec('unicorn') is not None)"
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    return "installed" if done.stdout.strip() == "True" else "not installed"


def clamav_files(aegis: str, work: Path, env: dict[str, str]) -> None:
    rule = work / "T.yar"
    rule.write_text(f'rule T {{ strings: $a = "{BODY}" condition: $a }}\n')
    ndb = work / "T.ndb"
    ndb.write_text(f"Aegis.Bench.Body:0:*:{BODY.encode().hex()}\n")
    files = sorted(p.name for p in TESTFILES.iterdir())
    a_time, a_out = _run(
        [aegis, "scan", "--json", "--no-bundled", "--no-cache", "--rules", str(rule),
         str(TESTFILES)], env,
    )  # fmt: skip
    found_a, incomplete = _aegis_found(a_out)
    clamscan = shutil.which("clamscan")
    found_c: set[str] | None = None
    c_time = 0.0
    if clamscan:
        c_time, c_out = _run([clamscan, "-r", "--no-summary", "-d", str(ndb), str(TESTFILES)], env)
        found_c = _clamscan_found(c_out)
    print(f"## a) {TESTFILES} ({len(files)} files), one body rule\n")
    print(f"runtime packer emulation (the `packers` extra): {_packers_extra(aegis)}\n")
    print("| file | aegis | clamscan |\n|---|---|---|")
    for name in files:
        c = "-" if found_c is None else ("found" if name in found_c else "**missed**")
        a = "found" if name in found_a else "**missed**"
        print(f"| {name} | {a} | {c} |")
    c_total = "not installed" if found_c is None else f"{len(found_c)} of {len(files)}"
    print(f"\nfound: aegis {len(found_a)} of {len(files)} ({a_time:.1f} s wall), "
          f"clamscan {c_total} ({c_time:.1f} s wall, includes loading its engine)")  # fmt: skip
    if incomplete:
        print("\naegis incomplete objects:\n")
        for line in incomplete:
            print(f"- {line}")


def tree_time(baseline: str, aegis: str, tree: str, rounds: int, env: dict[str, str]) -> None:
    times: dict[str, list[float]] = {"baseline": [], "this": []}
    ratios = []
    for r in range(rounds):
        order = [("baseline", baseline), ("this", aegis)]
        if r % 2:
            order.reverse()
        got = {}
        for label, cmd in order:
            got[label], _ = _run([cmd, "scan", "--json", "--no-cache", tree], env)
            times[label].append(got[label])
        ratios.append(got["this"] / got["baseline"])
    print(f"\n## b) bundled defaults, --no-cache, over {tree}, {rounds} rounds\n")
    for label in ("baseline", "this"):
        t = times[label]
        print(f"- {label}: median {statistics.median(t):.2f} s ({min(t):.2f}-{max(t):.2f})")
    print(
        f"- ratio this/baseline: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


def pe_probe(folder: Path, rounds: int = 200) -> None:
    sys.path.insert(0, str(ROOT))
    from aegis_engine.scanning.unpack_packer import packer_of

    pes = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 64 << 20:
            with path.open("rb") as fh:
                if fh.read(2) == b"MZ":
                    pes.append(path.read_bytes())
    if not pes:
        print(f"\n## c) no PE file under {folder}")
        return
    started = time.perf_counter()
    for _ in range(rounds):
        for data in pes:
            packer_of(data)
    each = (time.perf_counter() - started) / (rounds * len(pes)) * 1e6
    flagged = sum(1 for data in pes if packer_of(data))
    print(f"\n## c) packer check over {len(pes)} PE files under {folder}\n")
    print(f"- {each:.2f} µs per PE ({rounds} rounds); flagged as packed: {flagged}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aegis", default=str(ROOT / ".venv" / "bin" / "aegis"))
    parser.add_argument("--baseline", help="aegis of the checkout to compare the tree scan with")
    parser.add_argument("--tree", help="benign tree for b) (default: this venv's site-packages)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pe-probe", type=Path, help="time the packer check on the PEs here")
    args = parser.parse_args()
    if args.pe_probe:
        pe_probe(args.pe_probe)
        return 0
    if not TESTFILES.is_dir():
        print("needs the Debian package clamav-testfiles", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="aegis-bench-formats-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, AEGIS_HOME=str(work / "home"))
        clamav_files(args.aegis, work, env)
        if args.baseline:
            tree = args.tree or next(
                str(p) for p in (ROOT / ".venv" / "lib").glob("python3*/site-packages")
            )
            tree_time(args.baseline, args.aegis, tree, args.rounds, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
