"""Runtime packers (UPX, ASPack, ... : the PE unpacks itself in memory when run) through an
emulating unpacker, ``unipacker`` on the Unicorn engine, when it is installed (an optional
extra, GPL-2.0: it runs in its own process and Aegis never imports it).

Only a PE whose section names show a packer unipacker knows is emulated (an O(1) look at
the section table). The emulation runs in a child Python process (``emulate_child``) with a
fixed argument list, a private folder, no input, a bare environment, an address-space cap
and a wall-clock limit (:data:`EMULATION_TIMEOUT`, or less when max-scan-time leaves less).
The dumped image is a member ``unpacked-<packer>``; when the emulation fails, the packed
file has been scanned as it is and nothing more is reported; when it runs out of time, the
member is reported incomplete.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import sys
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from ..detectors.base import Buffer
from ..errors import ContainerError, LimitExceeded
from .budget import ExtractionBudget, Member
from .unpack_7zz import prlimit_args, read_tree, run_tool

EMULATION_TIMEOUT = 30.0
"""Longest one emulation may take (seconds)."""
EMULATION_ADDRESS_SPACE = 4 * 1024 * 1024 * 1024
_SECTION_PACKERS = {
    b"UPX0": "upx",
    b"UPX1": "upx",
    b".aspack": "aspack",
    b".adata": "aspack",
    b".MPRESS1": "mpress",
    b".MPRESS2": "mpress",
    b".petite": "petite",
    b"MEW": "mew",
    b".yC": "yzpack",
}
"""Section names of the packers unipacker emulates."""
CHILD_MODULE = "aegis_engine.scanning.emulate_child"


@lru_cache(maxsize=1)
def available() -> bool:
    """True when unipacker is installed (looked up once, without importing it)."""
    try:
        return importlib.util.find_spec("unipacker") is not None
    except (ImportError, ValueError):
        return False


def packer_of(data: Buffer) -> str | None:
    """The packer a PE's section names show, or None (reads the section table only)."""
    size = len(data)
    if size < 0x40:
        return None
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > size:
        return None
    (count,) = struct.unpack_from("<H", data, lfanew + 6)
    (opt_size,) = struct.unpack_from("<H", data, lfanew + 20)
    table = lfanew + 24 + opt_size
    for i in range(min(count, 96)):
        entry = table + 40 * i
        if entry + 8 > size:
            return None
        name = bytes(data[entry : entry + 8]).rstrip(b"\x00")
        if name in _SECTION_PACKERS:
            return _SECTION_PACKERS[name]
    return None


def child_command(src: str, dst: str) -> list[str]:
    """How the child is started (a test replaces this to model an emulation that hangs)."""
    return [sys.executable, "-I", "-m", CHILD_MODULE, src, dst]


def iter_unpacked(
    data: Buffer, packer: str, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    label = f"unpacked-{packer}"
    work = tempfile.mkdtemp(prefix="aegis-unpack-", dir=tmpdir)
    try:
        src = os.path.join(work, "input")
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh, memoryview(data) as view:
            fh.write(view)
        out = os.path.join(work, "out")
        os.mkdir(out, 0o700)
        args = [
            *prlimit_args(
                budget, address_space=EMULATION_ADDRESS_SPACE, cpu_seconds=EMULATION_TIMEOUT
            ),
            *child_command(src, os.path.join(out, label)),
        ]
        try:
            run_tool(args, work, budget, f"{packer} emulation", timeout=EMULATION_TIMEOUT)
        except LimitExceeded as exc:
            if exc.limit != "max-scan-time":
                raise
            yield Member(label, b"", 0, problem=f"max-scan-time: {exc.detail}")
            return
        except ContainerError:
            return  # the emulation failed: the packed file was scanned as it is
        yield from read_tree(out, budget, tmpdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
