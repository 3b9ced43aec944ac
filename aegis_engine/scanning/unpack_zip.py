"""ZIP: the central directory is read lazily (see unpack_zipdir) and member data is inflated
here, in bounded chunks, straight from the container buffer. zipfile's readers are not used:
ZipFile builds every central-directory entry up front, and ZipExtFile inflates bzip2/lzma
members without an output bound."""

from __future__ import annotations

import bz2
import lzma
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..display import human_size
from ..errors import ContainerError, LimitExceeded
from ..results import Finding, FindingKind, Severity
from .budget import ExtractionBudget, Member
from .unpack_io import CHUNK, INPUT_CHUNK, BufferReader, MemberSink, member_label
from .unpack_stream import Decompressor, Deflate64Decompressor, ZlibDecompressor, inflate
from .unpack_zipdir import ZipEntry, iter_entries

_METHOD_NAMES = {
    1: "shrink",
    2: "reduce",
    3: "reduce",
    4: "reduce",
    5: "reduce",
    6: "implode",
    9: "deflate64",
    10: "pkware-implode",
    18: "ibm-terse",
    19: "lz77",
    93: "zstd",
    94: "mp3",
    96: "jpeg",
    97: "wavpack",
    98: "ppmd",
    99: "aes",
}
_SUPPORTED_METHODS = (0, 8, 9, 12, 14, 95)
_TOOL_METHODS = (1, 2, 3, 4, 5, 6, 98)
"""Methods 7zz reads when it is installed (see _through_7zz)."""
RATIO_MIN_SIZE = 100 * 1024 * 1024
RATIO_MIN = 1000
FINDINGS_MAX_ENTRIES = 100_000
"""container_findings looks at this many central-directory entries at most."""
UNLIMITED_MAX_ENTRIES = 1 << 20
"""Entries read when max-files is 0 (unlimited)."""


def _read_entries(reader: BufferReader, cap: int) -> tuple[list[ZipEntry], bool]:
    """Up to ``cap`` central-directory entries, and whether there are more."""
    entries: list[ZipEntry] = []
    for entry in iter_entries(reader):
        if len(entries) >= cap:
            return entries, True
        entries.append(entry)
    return entries, False


def _overlapping(entries: list[ZipEntry]) -> set[int]:
    """Indexes of entries whose data overlaps another entry (David Fifield's zip bomb)."""
    flagged: set[int] = set()
    furthest: ZipEntry | None = None
    for entry in sorted(entries, key=lambda e: (e.header_offset, e.index)):
        if furthest is not None and entry.header_offset < furthest.end:
            flagged.update((entry.index, furthest.index))
        if furthest is None or entry.end > furthest.end:
            furthest = entry
    return flagged


def _archive_finding(what: str, severity: Severity, score: float, **details: object) -> Finding:
    """A structural heuristic about the archive (``Heuristics.Archive.<what>``)."""
    return Finding(
        detector="container",
        name=f"Heuristics.Archive.{what}",
        severity=severity,
        kind=FindingKind.HEURISTIC,
        score=score,
        details=details,
    )


def zip_findings(obj: ScanObject) -> list[Finding]:
    """Structural heuristics from the central directory alone (nothing is inflated)."""
    reader = BufferReader(obj.data)
    archive_size = len(reader)
    try:
        entries, _ = _read_entries(reader, FINDINGS_MAX_ENTRIES)
    except ContainerError:
        return []
    finally:
        reader.close()
    findings = []
    overlapping = _overlapping(entries)
    if overlapping:
        declared = sum(entries[i].file_size for i in overlapping)
        findings.append(
            _archive_finding(
                "OverlappingEntries",
                Severity.SUSPICIOUS,
                0.9,
                overlapping_entries=len(overlapping),
                entries=len(entries),
                declared_size=declared,
                archive_size=archive_size,
            )
        )
    worst = max(
        (e for e in entries if e.file_size > RATIO_MIN_SIZE),
        key=lambda e: e.file_size / max(1, e.compress_size),
        default=None,
    )
    if worst is not None:
        ratio = worst.file_size / max(1, worst.compress_size)
        if ratio > RATIO_MIN:
            findings.append(
                _archive_finding(
                    "CompressionRatio",
                    Severity.INFO,
                    0.3,
                    member=member_label(worst.name),
                    declared_size=worst.file_size,
                    compressed_size=worst.compress_size,
                    ratio=round(ratio),
                )
            )
    return findings


def _is_regular(entry: ZipEntry) -> bool:
    if entry.is_dir:
        return False
    mode = entry.external_attr >> 16
    if entry.create_system == 3 and stat.S_IFMT(mode):  # Unix: symlinks, devices, fifos
        return stat.S_ISREG(mode)
    return True


def _problem(info: ZipEntry, budget: ExtractionBudget) -> str | None:
    if info.flags & 0x41 or info.method == 99:
        return "encrypted: zip member is password-protected"
    method = info.method
    if method not in _SUPPORTED_METHODS:
        name = _METHOD_NAMES.get(method, "unknown")
        return f"unsupported: zip compression method {method} ({name})"
    max_size = budget.limits.max_file_size
    if max_size and info.file_size > max_size:
        return (
            f"max-file-size: member declares {human_size(info.file_size)} "
            f"(limit {human_size(max_size)})"
        )
    return None


def iter_zip(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    reader = BufferReader(obj.data)
    try:
        max_files = budget.limits.max_files
        cap = 4 * max_files if max_files else UNLIMITED_MAX_ENTRIES
        entries, more = _read_entries(reader, cap)
        overlapping = _overlapping(entries)
        errors: list[str] = []
        deferred: list[tuple[str, ZipEntry, str]] = []
        for entry in entries:
            budget.check_time()
            if entry.index in overlapping or not _is_regular(entry):
                continue
            name = member_label(entry.name)
            budget.add_file()
            problem = _problem(entry, budget)
            if problem and entry.method in _TOOL_METHODS and not problem.startswith("encrypted"):
                deferred.append((name, entry, problem))
                continue
            if problem:
                yield Member(name, b"", entry.file_size, problem=problem)
                continue
            if entry.data_offset is None:
                errors.append(f"{name}: bad local header")
                continue
            member, error = _extract(reader, entry, name, budget, tmpdir)
            if error:
                errors.append(error)
            yield member
        if deferred:
            yield from _through_7zz(obj, deferred, budget, tmpdir)
        if more:
            raise LimitExceeded("max-files", f"zip central directory holds more than {cap} entries")
        if overlapping:
            raise LimitExceeded(
                "zip-bomb",
                f"{len(overlapping)} zip entries overlap each other's data and were not "
                "inflated (overlapping-entry zip bomb)",
            )
        if errors:
            others = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise ContainerError("zip: damaged member " + "; ".join(errors[:3]) + others)
    finally:
        reader.close()


def _through_7zz(
    obj: ScanObject,
    deferred: list[tuple[str, ZipEntry, str]],
    budget: ExtractionBudget,
    tmpdir: Path,
) -> Iterator[Member]:
    """Members in the old PKWARE methods (implode, shrink, reduce) and PPMd, read by 7zz."""
    from .unpack_7zz import iter_7zz, tool_path

    if tool_path() is None:
        for name, entry, problem in deferred:
            yield Member(name, b"", entry.file_size, problem=f"{problem}: 7zz is not installed")
        return
    wanted = {name: (entry, problem) for name, entry, problem in deferred}
    names = [entry.name for _, entry, _ in deferred]
    for member in iter_7zz(obj.data, "zip", budget, tmpdir, label="zip", names=names):
        if wanted.pop(member.name, None) is not None:
            yield member
        else:
            member.close()
    for name, (entry, problem) in wanted.items():
        yield Member(name, b"", entry.file_size, problem=problem)


def _extract(
    reader: BufferReader, entry: ZipEntry, name: str, budget: ExtractionBudget, tmpdir: Path
) -> tuple[Member, str | None]:
    info = entry
    assert entry.data_offset is not None
    start = entry.data_offset
    stop = start + info.compress_size
    pos = start

    def read_input(n: int) -> bytes:
        nonlocal pos
        data = reader.pread(pos, min(n, stop - pos))
        pos += len(data)
        return data

    error: str | None = None
    crc = 0
    with MemberSink(name, budget, tmpdir, charge=True, declared_size=info.file_size) as sink:
        try:
            chunks = _member_chunks(info, read_input, name)
            for chunk in chunks:
                crc = zlib.crc32(chunk, crc)
                if not sink.write(chunk):
                    break
            else:
                if stop > len(reader):
                    error = f"{name}: data truncated"
                elif crc != info.crc:
                    error = f"{name}: CRC mismatch"
        except ContainerError as exc:
            error = str(exc)
        return sink.member(), error


def _member_chunks(
    info: ZipEntry, read_input: Callable[[int], bytes], name: str
) -> Iterator[bytes]:
    method = info.method
    if method == 0:
        return iter(lambda: read_input(CHUNK), b"")
    label = f"zip member {name}"
    make: Callable[[], Decompressor]
    if method == 8:
        make = lambda: ZlibDecompressor(-15)  # noqa: E731
    elif method == 9:
        make = Deflate64Decompressor
    elif method == 12:
        make = bz2.BZ2Decompressor
    elif method == 95:
        make = lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=128 * 1024 * 1024)  # noqa: E731
    else:
        make = _zip_lzma(read_input, info.file_size, label)
    return inflate(make, label, lambda n: read_input(min(n, INPUT_CHUNK)))


def _zip_lzma(
    read_input: Callable[[int], bytes], declared: int, label: str
) -> Callable[[], Decompressor]:
    """ZIP method 14: a 4-byte version/size header, 5 bytes of LZMA properties, raw LZMA1."""
    header = read_input(4)
    if len(header) < 4:
        raise ContainerError(f"{label}: truncated lzma header")
    (props_size,) = struct.unpack_from("<H", header, 2)
    props = read_input(props_size)
    if props_size != 5 or len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise ContainerError(f"{label}: bad lzma properties")
    pb, rest = divmod(props[0], 45)
    lp, lc = divmod(rest, 9)
    (dict_size,) = struct.unpack_from("<I", props, 1)
    # A dictionary larger than the member is never needed; this also caps decoder memory.
    dict_size = max(4096, min(dict_size, declared, 256 * 1024 * 1024))
    lzma_filter = {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}
    return lambda: lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[lzma_filter])
