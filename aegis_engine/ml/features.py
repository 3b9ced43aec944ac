"""PE header features: the same numbers for the public training tables and for real files.

The training tables (see ``shared/datasets/pe-headers/SOURCES.md``) hold only DOS header,
FILE_HEADER and OPTIONAL_HEADER fields, so the model sees exactly those, plus a few values
derived from them by :func:`vector_from_header` (used for table rows and files alike, so the
two can never drift apart).

Extraction is bounded whatever the file size: only the headers are read (at most
:data:`HEADER_WINDOW` bytes, with ``e_lfanew`` capped at :data:`MAX_LFANEW`), no data
directory is parsed (pefile ``fast_load``), and no section header either unless the optional
header is too short to hold the fields we use (then at most :data:`MAX_SECTIONS`). It never
raises: a file that is not a PE image, or whose headers cannot be parsed, gives a
:class:`FeatureResult` saying so.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..detectors.base import Buffer

FEATURE_VERSION = 1
"""Bumped whenever the meaning of a name in :data:`FEATURE_NAMES` changes. Names are only
ever added (at the end), so a model trained on an older, shorter list still finds its inputs:
a model's manifest lists the names it takes, in its own order, and the detector picks those
columns (see :func:`columns_for`)."""

DOS_FIELDS: tuple[str, ...] = (
    "e_cblp",
    "e_cp",
    "e_crlc",
    "e_cparhdr",
    "e_minalloc",
    "e_maxalloc",
    "e_ss",
    "e_sp",
    "e_csum",
    "e_ip",
    "e_cs",
    "e_lfarlc",
    "e_ovno",
    "e_oemid",
    "e_oeminfo",
    "e_lfanew",
)
FILE_FIELDS: tuple[str, ...] = (
    "NumberOfSections",
    "PointerToSymbolTable",
    "NumberOfSymbols",
    "SizeOfOptionalHeader",
    "Characteristics",
)
OPTIONAL_FIELDS: tuple[str, ...] = (
    "Magic",
    "MajorLinkerVersion",
    "MinorLinkerVersion",
    "SizeOfCode",
    "SizeOfInitializedData",
    "SizeOfUninitializedData",
    "AddressOfEntryPoint",
    "BaseOfCode",
    "ImageBase",
    "SectionAlignment",
    "FileAlignment",
    "MajorOperatingSystemVersion",
    "MinorOperatingSystemVersion",
    "MajorImageVersion",
    "MinorImageVersion",
    "MajorSubsystemVersion",
    "MinorSubsystemVersion",
    "SizeOfImage",
    "SizeOfHeaders",
    "CheckSum",
    "Subsystem",
    "DllCharacteristics",
    "SizeOfStackReserve",
    "SizeOfStackCommit",
    "SizeOfHeapReserve",
    "SizeOfHeapCommit",
    "LoaderFlags",
    "NumberOfRvaAndSizes",
)
HEADER_FIELDS: tuple[str, ...] = DOS_FIELDS + FILE_FIELDS + OPTIONAL_FIELDS
"""Raw header fields, named as in pefile and in both training tables."""

_CHAR_BITS = tuple(f"Characteristics_0x{1 << b:04x}" for b in range(16))
_DLLCHAR_BITS = tuple(f"DllCharacteristics_0x{1 << b:04x}" for b in range(16))
DERIVED_FIELDS: tuple[str, ...] = (
    *_CHAR_BITS,
    *_DLLCHAR_BITS,
    "EntryPointInCode",
    "EntryPointBeyondImage",
    "CodeToImageRatio",
    "InitDataToImageRatio",
    "CheckSumIsZero",
)
STRUCTURE_FIELDS: tuple[str, ...] = (
    "SizeOfImageAligned",
    "SizeOfHeadersAligned",
    "SizeOfCodeAligned",
    "SizeOfInitializedDataAligned",
    "BaseOfCodeAligned",
    "UninitDataToImageRatio",
    "DeclaredSizesToImageRatio",
    "HeadersToImageRatio",
    "EntryPointOffsetInCodeRatio",
    "EntryPointToImageRatio",
)
"""Consistency of the headers with themselves (sizes that are multiples of their alignment,
where the entry point and the declared sizes fall within the image): what any linker gets
right and packers or hand-made headers often do not, whichever toolchain built the file.
Added in model 1.1.0; still computed from the header fields alone, so for table rows too."""
FEATURE_NAMES: tuple[str, ...] = HEADER_FIELDS + DERIVED_FIELDS + STRUCTURE_FIELDS
"""Every feature this module computes, in the order of :func:`vector_from_header`'s output.
A model takes these or a subset (its manifest says which, in which order)."""

MAX_LFANEW = 0x10000
"""NT headers further into the file than this are treated as unparseable (training max: 3488)."""
MAX_SECTIONS = 96
"""Section headers parsed at most (the Windows loader's own limit)."""
_SECTION_HEADER = 40
HEADER_WINDOW = MAX_LFANEW + 24 + 0xFFFF
"""Upper bound on the bytes read from any file."""

_OPT_FIELDS_SIZE = 112
"""Bytes of the PE32+ optional header up to NumberOfRvaAndSizes (PE32 needs 96)."""
_MAGIC_PE32 = 0x10B
_MAGIC_PE32_PLUS = 0x20B


class FeatureStatus(StrEnum):
    OK = "ok"
    NOT_PE = "not_pe"
    """No MZ header, or MZ without a PE signature (DOS, NE, LE programs...)."""
    UNPARSEABLE = "unparseable"
    """Claims to be PE but its headers are truncated, out of range or inconsistent."""


@dataclass(frozen=True, slots=True)
class FeatureResult:
    status: FeatureStatus
    values: tuple[float, ...] = ()
    """One value per name in :data:`FEATURE_NAMES` when ``status`` is OK, else empty."""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status is FeatureStatus.OK


def vector_from_header(header: Mapping[str, float]) -> tuple[float, ...]:
    """The model's input row from raw header fields (a table row or a parsed file).

    ``header`` must hold every name in :data:`HEADER_FIELDS`; missing keys raise KeyError.
    """
    raw = [float(header[name]) for name in HEADER_FIELDS]
    chars = int(header["Characteristics"])
    dllchars = int(header["DllCharacteristics"])
    entry = float(header["AddressOfEntryPoint"])
    base_code = float(header["BaseOfCode"])
    size_code = float(header["SizeOfCode"])
    size_image = float(header["SizeOfImage"])
    size_init = float(header["SizeOfInitializedData"])
    derived = [float((chars >> b) & 1) for b in range(16)]
    derived += [float((dllchars >> b) & 1) for b in range(16)]
    derived += [
        float(base_code <= entry < base_code + size_code),
        float(entry >= size_image),
        _ratio(size_code, size_image),
        _ratio(size_init, size_image),
        float(header["CheckSum"] == 0),
    ]
    sect_align = float(header["SectionAlignment"])
    file_align = float(header["FileAlignment"])
    size_uninit = float(header["SizeOfUninitializedData"])
    size_headers = float(header["SizeOfHeaders"])
    derived += [
        _multiple(size_image, sect_align),
        _multiple(size_headers, file_align),
        _multiple(size_code, file_align),
        _multiple(size_init, file_align),
        _multiple(base_code, sect_align),
        _ratio(size_uninit, size_image),
        _ratio(size_code + size_init + size_uninit, size_image),
        _ratio(size_headers, size_image),
        _ratio(entry - base_code, size_code),
        _ratio(entry, size_image),
    ]
    return tuple(raw + derived)


def _ratio(num: float, den: float) -> float:
    """num / den capped to [-1000, 1000]; -1 when den is not positive."""
    if den <= 0:
        return -1.0
    return max(min(num / den, 1000.0), -1000.0)


def _multiple(value: float, align: float) -> float:
    """1 when value is a multiple of align, 0 when not, -1 when align is not positive."""
    if align <= 0:
        return -1.0
    return float(math.fmod(value, align) == 0)


def columns_for(names: Sequence[str]) -> tuple[int, ...]:
    """Positions in :data:`FEATURE_NAMES` of a model's input ``names``; KeyError naming the
    first one this module does not compute."""
    index = {n: i for i, n in enumerate(FEATURE_NAMES)}
    out = []
    for n in names:
        if n not in index:
            raise KeyError(n)
        out.append(index[n])
    return tuple(out)


def extract(data: Buffer, size: int | None = None) -> FeatureResult:
    """Features of one file whose whole content (or at least its first
    :data:`HEADER_WINDOW` bytes) is ``data``; ``size`` is the real file size when ``data``
    is only a prefix. Reads at most :data:`HEADER_WINDOW` bytes; never raises."""
    try:
        return _extract(data, len(data) if size is None else size)
    except Exception as exc:  # pefile and struct raise many kinds on hostile input
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason=f"{type(exc).__name__}: {exc}")


def _extract(data: Buffer, size: int) -> FeatureResult:
    avail = min(len(data), size)
    if avail < 2 or bytes(data[:2]) != b"MZ":
        return FeatureResult(FeatureStatus.NOT_PE, reason="no MZ header")
    if avail < 64:
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason="truncated DOS header")
    (lfanew,) = struct.unpack_from("<I", bytes(data[0x3C:0x40]))
    if lfanew + 4 > avail:
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason="e_lfanew points past the end")
    if lfanew > MAX_LFANEW:
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason=f"e_lfanew > {MAX_LFANEW:#x}")
    if bytes(data[lfanew : lfanew + 4]) != b"PE\0\0":
        return FeatureResult(FeatureStatus.NOT_PE, reason="no PE signature at e_lfanew")
    if lfanew + 24 + _OPT_FIELDS_SIZE > avail:
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason="truncated NT headers")
    (opt_size,) = struct.unpack_from("<H", bytes(data[lfanew + 20 : lfanew + 22]))
    sections_at = lfanew + 24 + opt_size
    if opt_size >= _OPT_FIELDS_SIZE and avail >= sections_at:
        # Every field we use lies before the section table: hand pefile a null section
        # header so that it parses no section at all (it would spend ~0.1 ms on each).
        head = bytes(data[:sections_at]) + bytes(_SECTION_HEADER)
    else:
        # A short optional header overlaps the section table (or the file ends inside the
        # optional header): give pefile what it would read from the whole file.
        head = bytes(data[: min(avail, lfanew + 24 + 0x200 + MAX_SECTIONS * _SECTION_HEADER)])

    import pefile  # deferred: ~50 ms to import, needed only once a PE file is seen

    # No pe.close(): the data is plain bytes, and close() runs gc.collect() (~1 ms).
    pe = pefile.PE(data=head, fast_load=True)
    opt = pe.OPTIONAL_HEADER
    if opt is None or opt.Magic not in (_MAGIC_PE32, _MAGIC_PE32_PLUS):
        return FeatureResult(FeatureStatus.UNPARSEABLE, reason="no valid optional header")
    header: dict[str, float] = {}
    for struct_obj, names in (
        (pe.DOS_HEADER, DOS_FIELDS),
        (pe.FILE_HEADER, FILE_FIELDS),
        (opt, OPTIONAL_FIELDS),
    ):
        for name in names:
            header[name] = float(getattr(struct_obj, name))
    return FeatureResult(FeatureStatus.OK, values=vector_from_header(header))
