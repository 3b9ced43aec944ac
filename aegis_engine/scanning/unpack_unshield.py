"""InstallShield cabinets (``dataN.hdr`` + ``dataN.cab``, magic ``ISc(``) through the Debian
``unshield`` program, run like 7zz (see unpack_7zz): fixed arguments, a private folder, the
volumes written there under fixed names, max-scan-time and a per-file size cap.

A cabinet needs its header file and its other volumes beside it, so it is opened where the
whole set is known: inside an InstallShield self-extractor (unpack_pe). Without ``unshield``
the set is reported as ``cannot open``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..detectors.base import Buffer
from .budget import ExtractionBudget, Member
from .unpack_7zz import prlimit_args, read_tree, run_tool

VOLUME_NAME = re.compile(r"data(\d{1,3})\.(cab|hdr)", re.I)
"""The only volume names written to disk (lower-cased): never a name taken as stored."""


def volume_name(stored: str) -> str | None:
    """``data1.cab`` for a stored name whose last part is a cabinet volume, else None."""
    base = stored.replace("\\", "/").rsplit("/", 1)[-1]
    match = VOLUME_NAME.fullmatch(base)
    if match is None:
        return None
    return f"data{int(match.group(1))}.{match.group(2).lower()}"


def iter_unshield(
    volumes: Mapping[str, Buffer], budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    """What the cabinet set ``volumes`` (volume_name -> content) holds, as ``data1.cab/...``."""
    first = min((n for n in volumes if n.endswith(".cab")), default=None)
    if first is None:
        return
    tool = shutil.which("unshield")
    if tool is None:
        yield Member(
            first, b"", 0, problem="cannot open: InstallShield cabinet needs unshield (package)"
        )
        return
    work = tempfile.mkdtemp(prefix="aegis-unshield-", dir=tmpdir)
    try:
        for name, data in volumes.items():
            fd = os.open(os.path.join(work, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh, memoryview(data) as view:
                fh.write(view)
        out = os.path.join(work, "out")
        os.mkdir(out, 0o700)
        budget.check_time()
        args = [*prlimit_args(budget), tool, "-d", out, "x", os.path.join(work, first)]
        run_tool(args, work, budget, "installshield cabinet")
        yield from read_tree(out, budget, tmpdir, prefix=f"{first}/")
    finally:
        shutil.rmtree(work, ignore_errors=True)
