"""Unpacking containers within an :class:`ExtractionBudget`, and archive structure heuristics.

``iter_members`` yields :class:`Member` objects one at a time; every decompressed byte is
charged to the budget as it is produced, so ratio bombs stop at max-scan-size without being
inflated. Failures come out as two exceptions only: :class:`LimitExceeded` (a limit was
reached: the target is incomplete) and :class:`ContainerError` (damaged or unsupported),
raised after the members that could be read were yielded.

Formats: ZIP (a lazy central-directory reader and the stdlib decompressors: stored, deflate,
bzip2, lzma, xz), TAR and single gzip/bzip2/xz/lzma streams (tarfile over bounded stdlib
decompression), and through libarchive when importable 7z, CAB, RAR, ISO 9660, cpio and ar
(7z falls back to py7zr). ARJ is recognised but not unpacked; deflate64/implode ZIP members
are yielded with an ``unsupported:`` problem.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..errors import AegisError, ContainerError
from ..results import Finding
from .budget import ExtractionBudget, Member
from .unpack_tar import iter_stream, iter_tar
from .unpack_zip import iter_zip, zip_findings

__all__ = ["container_findings", "iter_members", "unpackable"]

_Opener = Callable[[ScanObject, ExtractionBudget, Path], Iterator[Member]]


_LIBARCHIVE_TYPES = frozenset({"7Z", "CAB", "RAR", "ISO", "CPIO", "AR"})
"""Types unpack_libarchive.FORMATS reads (kept here so that importing this costs nothing)."""


def _tool_opener(kind: str, label: str) -> _Opener:
    """An opener that reads the object with 7zz as 7-Zip type ``kind``."""

    def open_with_7zz(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
        from .unpack_7zz import iter_7zz

        for member in iter_7zz(obj.data, kind, budget, tmpdir, label=label):
            if kind == "mslz" and member.name.startswith("input"):
                member.name = f"{obj.name or 'szdd'}:expanded"  # SZDD stores no name
            yield member

    return open_with_7zz


def _document_opener(filetype: str) -> _Opener | None:
    """Documents, mail and installers (each module imports its library only when used)."""
    if filetype == "OLE2":
        from .unpack_ole2 import iter_ole2

        return iter_ole2
    if filetype == "PDF":
        from .unpack_pdf import iter_pdf

        return iter_pdf
    if filetype == "MAIL":
        from .unpack_mail import iter_mail

        return iter_mail
    if filetype == "RTF":
        from .unpack_rtf import iter_rtf

        return iter_rtf
    if filetype == "TNEF":
        from .unpack_tnef import iter_tnef

        return iter_tnef
    if filetype in ("HTML", "BINHEX"):
        from .unpack_text import iter_binhex, iter_html

        return iter_html if filetype == "HTML" else iter_binhex
    if filetype == "PE":
        from .unpack_pe import iter_pe

        return iter_pe
    if filetype == "SIS":
        from .unpack_sis import iter_sis

        return iter_sis
    if filetype in ("ARJ", "CHM", "SZDD"):
        return _tool_opener(TOOL_KINDS[filetype], filetype.lower())
    return None


TOOL_KINDS = {"ARJ": "arj", "CHM": "chm", "SZDD": "mslz"}
"""Container labels read by the 7zz program (7-Zip type names)."""


def _opener(filetype: str) -> _Opener | None:
    if filetype == "ZIP":
        return iter_zip
    if filetype == "TAR":
        return iter_tar
    if filetype in ("GZIP", "BZIP2", "XZ", "LZMA"):
        return iter_stream
    if filetype in _LIBARCHIVE_TYPES:
        from . import unpack_libarchive  # loads libarchive (ctypes): only when needed

        if unpack_libarchive.available(filetype):
            return unpack_libarchive.iter_libarchive
    if filetype == "7Z":
        from . import unpack_7z  # py7zr costs ~90 ms to import: only when it is needed

        if unpack_7z.HAVE_PY7ZR:
            return unpack_7z.iter_py7zr
    return _document_opener(filetype)


def unpackable(filetype: str) -> bool:
    """True when :func:`iter_members` can open objects of this sniffed type here."""
    return _opener(filetype) is not None


def iter_members(
    obj: ScanObject, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member] | None:
    """Members of ``obj`` (by its sniffed ``filetype``), or None when it is not a container
    this installation can open (the caller scans it as a plain file).

    ``obj.data`` is read in place (no copy of the whole container). Members up to
    ``in_memory_member_size`` are bytes; larger ones are mmapped private temp files created
    in ``tmpdir`` (random names) and removed by :meth:`Member.close`. Members over
    max-file-size, encrypted or using an unsupported method are yielded with ``problem`` set
    and empty data. Directories, links and devices are skipped. Close the iterator (or run it
    to the end) to release the view on ``obj.data``.
    """
    opener = _opener(obj.filetype)
    if opener is None:
        return None
    return _guarded(opener(obj, budget, tmpdir), obj.filetype)


def _guarded(members: Iterator[Member], filetype: str) -> Iterator[Member]:
    """Turn anything an archive library raises on hostile input into ContainerError."""
    try:
        yield from members
    except AegisError:
        raise
    except Exception as exc:
        raise ContainerError(
            f"{filetype.lower()}: cannot unpack ({type(exc).__name__}: {exc})"
        ) from exc


def container_findings(obj: ScanObject) -> list[Finding]:
    """Structural heuristics computed without inflating anything (ZIP only for now):
    overlapping entries (``Heuristics.Archive.OverlappingEntries``, suspicious) and an absurd
    declared compression ratio (``Heuristics.Archive.CompressionRatio``, info). Never raises
    for damaged input: damage is reported by :func:`iter_members`."""
    if obj.filetype != "ZIP":
        return []
    try:
        return zip_findings(obj)
    except Exception:  # a heuristic must never fail a scan
        return []
