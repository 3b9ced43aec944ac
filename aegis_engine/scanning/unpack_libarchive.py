"""7z, CAB, RAR, ISO 9660, cpio and ar through libarchive (libarchive-c), when importable.

libarchive reads the container through callbacks over the buffer (no copy of the whole
archive); only regular files are read, into private temp files or memory, never by name.
"""

from __future__ import annotations

import ctypes
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..detectors.base import ScanObject
from ..display import human_size
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import CHUNK, INPUT_CHUNK, BufferReader, MemberSink, member_label

_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = ()
try:
    import libarchive
    from libarchive import ffi as _ffi
    from libarchive.exception import ArchiveError

    HAVE_LIBARCHIVE = True
    _ARCHIVE_ERRORS = (ArchiveError,)
except Exception:  # ImportError, or OSError when the shared library is missing
    HAVE_LIBARCHIVE = False

_entry_is_encrypted: Callable[[Any], int] | None = None
if HAVE_LIBARCHIVE:
    try:
        _fn = _ffi.libarchive.archive_entry_is_encrypted
        _fn.argtypes = [ctypes.c_void_p]
        _fn.restype = ctypes.c_int
        _entry_is_encrypted = _fn
    except AttributeError:  # libarchive < 3.2
        pass

FORMATS = {"7Z": "7zip", "CAB": "cab", "RAR": "rar", "ISO": "iso9660", "CPIO": "cpio", "AR": "ar"}
"""Sniffed type -> libarchive format reader (ARJ is not read by libarchive)."""
_SKIP_IS_CHEAP = frozenset({"ISO", "CPIO", "AR"})
"""Formats whose members are stored uncompressed, so skipping one decompresses nothing."""
_FATAL = -30
_SEEK_ERROR = -30


def available(filetype: str) -> bool:
    return HAVE_LIBARCHIVE and filetype in FORMATS


def iter_libarchive(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    fmt = FORMATS[obj.filetype]
    if obj.filetype == "RAR" and bytes(obj.data[:8]) == b"Rar!\x1a\x07\x01\x00":
        fmt = "rar5"
    label = obj.filetype.lower()
    reader = BufferReader(obj.data)
    block = ctypes.create_string_buffer(INPUT_CHUNK)
    block_view = memoryview(block).cast("B")
    block_address = ctypes.addressof(block)

    def read_func(_archive: Any, _context: Any, ptrptr: Any) -> int:
        try:
            n = reader.readinto(block_view)
        except (OSError, ValueError):
            return _FATAL
        ctypes.cast(ptrptr, ctypes.POINTER(ctypes.c_void_p))[0] = block_address
        return n

    def seek_func(_archive: Any, _context: Any, offset: int, whence: int) -> int:
        try:
            return reader.seek(offset, whence)
        except (OSError, ValueError):
            return _SEEK_ERROR

    try:
        with libarchive.custom_reader(
            read_func, format_name=fmt, filter_name="none", seek_func=seek_func
        ) as archive:
            yield from _entries(archive, obj.filetype, label, budget, tmpdir)
    except _ARCHIVE_ERRORS as exc:
        message = getattr(exc, "msg", None) or str(exc)
        if "ncrypt" in message or "assphrase" in message:
            yield Member(f"<{label} headers>", b"", 0, problem=f"encrypted: {message}")
            return
        raise ContainerError(f"{label}: {message}") from exc
    finally:
        block_view.release()
        reader.close()


def _entries(
    archive: Any, filetype: str, label: str, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    max_size = budget.limits.max_file_size
    for entry in archive:
        budget.check_time()
        kind = stat.S_IFMT(entry.filetype)
        if kind not in (0, stat.S_IFREG) or entry.islnk:
            continue  # directories, symlinks, hardlinks, devices, fifos, sockets
        raw_name = entry.pathname
        if kind == 0 and isinstance(raw_name, str) and raw_name.endswith("/"):
            continue
        name = member_label(raw_name)
        budget.add_file()
        size = entry.size
        if _entry_is_encrypted is not None and _entry_is_encrypted(entry._entry_p):
            yield Member(name, b"", size or 0, problem=f"encrypted: {label} member is encrypted")
            continue
        if max_size and size is not None and size > max_size:
            if filetype not in _SKIP_IS_CHEAP:
                _drain(entry, budget)
            yield Member(
                name,
                b"",
                size,
                problem=f"max-file-size: member declares {human_size(size)} "
                f"(limit {human_size(max_size)})",
            )
            continue
        with MemberSink(name, budget, tmpdir, charge=True, declared_size=size) as sink:
            for chunk in entry.get_blocks(CHUNK):
                if not sink.write(chunk) and filetype in _SKIP_IS_CHEAP:
                    break  # the rest is skipped without decompressing anything
            member = sink.member()
        yield member


def _drain(entry: Any, budget: ExtractionBudget) -> None:
    """Read (and charge) a member we do not keep: skipping it in a compressed format would
    decompress it anyway, without the budget seeing it."""
    for chunk in entry.get_blocks(CHUNK):
        budget.add_bytes(len(chunk))
