#!/usr/bin/env python3
"""The floor for comparison a): yara-python alone, with no Aegis code, over the same tree.

    .venv/bin/python bench/yara_floor.py RULES_DIR TREE [--jobs N] [--mode data|path]

Compiles every ``.yar``/``.yara`` file under RULES_DIR (one namespace per file, the external
variables Aegis defines set to ""), then matches every regular file of TREE on N threads in
chunks of 16 files: ``mode=data`` maps each file and calls ``rules.match(data=...)`` as Aegis
does, ``mode=path`` lets libyara open the file. Prints wall and CPU seconds of the matching.
Comparing this with ``yara -r -p N`` separates the library's cost from the cost of the code
around it. Needs yara-python (a dependency of Aegis).
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import yara

EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner", "md5", "sha1", "sha256")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rules")
    ap.add_argument("tree")
    ap.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--mode", choices=("data", "path"), default="data")
    args = ap.parse_args()

    files = {}
    for root, _dirs, names in os.walk(args.rules):
        for n in names:
            if n.endswith((".yar", ".yara")):
                p = os.path.join(root, n)
                files[os.path.relpath(p, args.rules)] = p
    ext = dict.fromkeys(EXTERNALS, "")
    rules = yara.compile(filepaths=files, externals=ext)
    paths = []
    for root, _dirs, names in os.walk(args.tree):
        for n in names:
            p = os.path.join(root, n)
            if stat.S_ISREG(os.lstat(p).st_mode):
                paths.append(p)

    def one(path: str) -> int:
        if args.mode == "path":
            return len(rules.match(path, externals=ext))
        fd = os.open(path, os.O_RDONLY)
        try:
            if os.fstat(fd).st_size == 0:
                return len(rules.match(data=b"", externals=ext))
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as m:
                return len(rules.match(data=m, externals=ext))
        finally:
            os.close(fd)

    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    with ThreadPoolExecutor(args.jobs) as pool:
        matches = sum(pool.map(one, paths, chunksize=16))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(
        f"yara-python {yara.__version__}, {len(files)} rule files, {len(paths)} files, "
        f"mode={args.mode}, jobs={args.jobs}: {matches} matches, "
        f"wall {time.perf_counter() - t0:.2f} s, cpu {cpu:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
