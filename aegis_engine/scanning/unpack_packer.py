"""Runtime packers (UPX, ASPack, PEtite, MEW, Upack, PESpin, yC, ... : the PE unpacks itself
in memory when run) through our own emulating unpacker, ``emulate_child`` on the Unicorn CPU
emulator, when the optional extra ``packers`` is installed (``unicorn`` is GPL-2.0: it is
imported only by that child process, never by the engine).

Only a PE whose headers show a packer is emulated (an O(1) look at the section table and at
most 16 bytes at the entry point): a section name a packer writes, Upack's PE header inside
the DOS header, or PESpin's entry code. The emulation runs in a child Python process
(``python -I -m aegis_engine.scanning.emulate_child``) with a fixed argument list, a private
folder, no input, a bare environment, an address-space cap, a CPU-time cap and a wall-clock
limit (:data:`EMULATION_TIMEOUT`, or less when max-scan-time leaves less). What it dumps are
members named ``unpacked-<packer>`` (the image), ``unpacked-<packer>-alloc-<address>`` and
``unpacked-<packer>-zip-<n>`` (zip archives found in the unpacked memory), every byte charged
to the budget. When the emulation unpacks nothing, the packed file has been scanned as it is
and nothing more is reported; when it runs out of time, the member is reported incomplete.
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
CHILD_MARGIN = 3.0
"""Seconds left to the child after its own time limit: start-up, writing what it unpacked."""
_SECTION_PACKERS = {
    b"UPX0": "upx",
    b"UPX1": "upx",
    b".aspack": "aspack",
    b".adata": "aspack",
    b".MPRESS1": "mpress",
    b".MPRESS2": "mpress",
    b".petite": "petite",
    b"MEW": "mew",
    b".yC": "yc",
    b"yC": "yc",
    b".WWP32": "wwpack",
}
"""Section names packers write (up to the first NUL) and the packer each shows. A file packed
twice keeps the inner packer's names too (yC over UPX): any other name wins over UPX's."""
_ENTRY_PACKERS = {
    bytes.fromhex("eb016860e8000000008b1c24"): "pespin",
}
"""The first bytes at the entry point of packers whose section names vary."""
_ENTRY_PROBE = 16
CHILD_MODULE = "aegis_engine.scanning.emulate_child"


@lru_cache(maxsize=1)
def available() -> bool:
    """True when the Unicorn emulator is installed (looked up once, without importing it)."""
    try:
        return importlib.util.find_spec("unicorn") is not None
    except (ImportError, ValueError):
        return False


def packer_of(data: Buffer) -> str | None:
    """The packer a PE's headers show, or None (reads the headers and the entry point's
    first bytes only)."""
    size = len(data)
    if size < 0x40:
        return None
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 44 > size or bytes(data[lfanew : lfanew + 4]) != b"PE\x00\x00":
        return None
    (count,) = struct.unpack_from("<H", data, lfanew + 6)
    (opt_size,) = struct.unpack_from("<H", data, lfanew + 20)
    (entry,) = struct.unpack_from("<I", data, lfanew + 40)
    table = lfanew + 24 + opt_size
    entry_offset = None
    found = None
    for i in range(min(count, 96)):
        at = table + 40 * i
        if at + 40 > size:
            return None
        name = bytes(data[at : at + 8]).split(b"\x00", 1)[0]
        if name in _SECTION_PACKERS and found in (None, "upx"):
            found = _SECTION_PACKERS[name]
        vsize, rva, raw_size, raw_ptr = struct.unpack_from("<IIII", data, at + 8)
        if rva <= entry < rva + max(vsize, raw_size) and entry - rva < raw_size:
            entry_offset = raw_ptr + entry - rva
    if found is not None:
        return found
    if lfanew == 0x10 and bytes(data[2:14]).upper() == b"KERNEL32.DLL":
        return "upack"  # Upack keeps its PE header and import names in the DOS header
    if entry_offset is not None:
        head = bytes(data[entry_offset : entry_offset + _ENTRY_PROBE])
        for prefix, packer in _ENTRY_PACKERS.items():
            if head.startswith(prefix):
                return packer
    return None


def child_command(src: str, dst: str, seconds: float) -> list[str]:
    """How the child is started (a test replaces this to model an emulation that hangs)."""
    return [sys.executable, "-I", "-m", CHILD_MODULE, src, dst, f"{seconds:.1f}"]


def _limit_for(budget: ExtractionBudget) -> float:
    """Seconds the emulation may take: EMULATION_TIMEOUT, or what max-scan-time leaves."""
    left = budget.time_left()
    return EMULATION_TIMEOUT if left is None else max(1.0, min(EMULATION_TIMEOUT, left))


def iter_unpacked(
    data: Buffer, packer: str, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    label = f"unpacked-{packer}"
    what = f"{packer} emulation"
    work = tempfile.mkdtemp(prefix="aegis-unpack-", dir=tmpdir)
    try:
        src = os.path.join(work, "input")
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh, memoryview(data) as view:
            fh.write(view)
        out = os.path.join(work, "out")
        os.mkdir(out, 0o700)
        limit = _limit_for(budget)
        # the child stops itself first and keeps what it unpacked; the wall clock is the backstop
        args = [
            *prlimit_args(budget, address_space=EMULATION_ADDRESS_SPACE, cpu_seconds=limit),
            *child_command(src, os.path.join(out, label), max(0.5, limit - CHILD_MARGIN)),
        ]
        try:
            said = run_tool(args, work, budget, what, timeout=limit)
        except LimitExceeded as exc:
            if exc.limit != "max-scan-time":
                raise
            yield Member(label, b"", 0, problem=f"max-scan-time: {exc.detail}")
            return
        except ContainerError:
            return  # the emulator failed: the packed file was scanned as it is
        yield from read_tree(out, budget, tmpdir)
        if said.startswith("limit:"):
            reason = said.partition(":")[2].strip().splitlines()[0][:200]
            problem = f"max-scan-time: {what} stopped at {reason}; what it unpacked was scanned"
            yield Member(f"{label}-emulation", b"", 0, problem=problem)
    finally:
        shutil.rmtree(work, ignore_errors=True)
