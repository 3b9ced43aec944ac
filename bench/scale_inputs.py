#!/usr/bin/env python3
"""Large inputs that must still work: a 1,000,000-line hash list and a 200,000-file tree.

    .venv/bin/python bench/scale_inputs.py [--lines 1000000] [--files 200000]

1. Writes a ``.hdb`` of ``--lines`` random MD5 lines with EICAR's MD5 in the middle, and runs
   ``aegis scan --json --no-cache --hashes LIST`` on a folder holding EICAR (padded so that
   only the hash list, not the EICAR detector, can name it) and a clean file: it must
   exit 1 and name the list's signature.
2. Builds a tree of ``--files`` small files (100 per folder) with one EICAR in it and runs
   ``aegis scan --json`` over it, then again (answered from the scan cache): both must exit
   1 and count every file.

Reports wall time and peak RSS (``os.wait4`` rusage) of each run as JSON. Everything is
written under a temporary folder with a private AEGIS_HOME and removed afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def run_rss(cmd: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run with wait4 so that the peak RSS of the process itself is known."""
    t = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t
        out.seek(0)
        err.seek(0)
        lines = [json.loads(x) for x in out.read().decode().splitlines() if x.strip()]
        tail = err.read().decode()[-300:]
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "seconds": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "summary": lines[-1].get("summary") if lines else None,
        "names": sorted({d["name"] for o in lines[:-1] for d in o.get("detections", [])}),
        "stderr_tail": tail,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=200_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aegis-scale-"))
    env = {**os.environ, "AEGIS_HOME": str(work / "home")}
    aegis = [sys.executable, "-m", "aegis_engine.cli", "scan", "--json"]
    result: dict[str, object] = {}
    try:
        if args.lines:
            padded = EICAR + b"\n" + b"padding " * 8  # not EICAR any more: only the list
            target = work / "hashes-target"
            target.mkdir()
            (target / "sample.bin").write_bytes(padded)
            (target / "clean.txt").write_text("hello")
            hdb = work / "big.hdb"
            middle = args.lines // 2
            with open(hdb, "w") as fh:
                for n in range(args.lines):
                    if n == middle:
                        md5 = hashlib.md5(padded).hexdigest()
                        fh.write(f"{md5}:{len(padded)}:Bench.Padded.Eicar\n")
                    else:
                        fh.write(f"{secrets.token_hex(16)}:{1000 + n % 5000}:Bench.Random.{n}\n")
            r = run_rss([*aegis, "--no-cache", "--hashes", str(hdb), str(target)], env)
            r["list_mib"] = round(hdb.stat().st_size / 2**20, 1)
            r["ok"] = r["exit"] == 1 and "Bench.Padded.Eicar" in r["names"]
            result["hash_list"] = {"lines": args.lines, **r}
            print(json.dumps(result["hash_list"]), flush=True)
        if args.files:
            tree = work / "tree"
            t = time.monotonic()
            for n in range(args.files):
                folder = tree / f"d{n // 10000:02d}" / f"e{n // 100 % 100:02d}"
                if n % 100 == 0:
                    folder.mkdir(parents=True, exist_ok=True)
                (folder / f"f{n % 100:02d}.txt").write_bytes(b"file %d\n" % n)
            (tree / "eicar.com").write_bytes(EICAR)
            built = round(time.monotonic() - t, 1)
            first = run_rss([*aegis, str(tree)], env)
            again = run_rss([*aegis, str(tree)], env)
            for r in (first, again):
                s = r["summary"] or {}
                r["ok"] = r["exit"] == 1 and s.get("files") == args.files + 1
            result["tree"] = {
                "files": args.files + 1,
                "build_seconds": built,
                "first": first,
                "rescan": again,
            }
            print(json.dumps(result["tree"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(
        v.get("ok", True) if isinstance(v, dict) else True
        for part in result.values()
        for v in ([part] + [x for x in part.values() if isinstance(x, dict)])  # type: ignore[union-attr]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
