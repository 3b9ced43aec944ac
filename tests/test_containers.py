"""Unpacking containers within the budget (all inputs generated at test time, except the
optional Debian clamav-testfiles)."""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import mmap
import os
import struct
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import py7zr
import pytest
from conftest import CLAMAV_TESTFILES, EICAR
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis_engine.config import ScanLimits
from aegis_engine.detectors.base import Buffer, ScanObject
from aegis_engine.errors import ContainerError, LimitExceeded
from aegis_engine.results import FindingKind, Severity
from aegis_engine.scanning import unpack_libarchive
from aegis_engine.scanning.budget import ExtractionBudget, Member
from aegis_engine.scanning.containers import container_findings, iter_members
from aegis_engine.scanning.sniff import is_container, sniff

MiB = 1024 * 1024
HAVE_LIBARCHIVE = unpack_libarchive.HAVE_LIBARCHIVE
needs_libarchive = pytest.mark.skipif(not HAVE_LIBARCHIVE, reason="libarchive not importable")


# -- helpers --------------------------------------------------------------------------------
def obj_for(data: Buffer, name: str, filetype: str | None = None) -> ScanObject:
    return ScanObject(
        path=name,
        name=name,
        data=data,
        size=len(data),
        filetype=filetype or sniff(bytes(data[: 36 * 1024]), name),
    )


def members_of(
    data: Buffer, name: str, tmpdir: Path, limits: ScanLimits | None = None
) -> Iterator[Member]:
    it = iter_members(obj_for(data, name), ExtractionBudget(limits or ScanLimits()), tmpdir)
    assert it is not None, f"{name} is not opened as a container"
    return it


def listing(data: Buffer, name: str, tmpdir: Path, limits: ScanLimits | None = None) -> list:
    """(name, bytes or problem) for each member, members closed."""
    out = []
    for m in members_of(data, name, tmpdir, limits):
        out.append((m.name, m.problem or bytes(m.data), m.size))
        m.close()
    return out


def walk(data: Buffer, path: str, tmpdir: Path, budget: ExtractionBudget) -> dict[str, bytes]:
    """Recursively unpack: leaf paths (``outer!member!...``) -> content."""
    name = path.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    members = iter_members(obj_for(data, name), budget, tmpdir)
    if members is None:
        return {path: bytes(data)}
    leaves: dict[str, bytes] = {}
    for m in members:
        try:
            assert m.problem is None, m.problem
            leaves.update(walk(m.data, f"{path}!{m.name}", tmpdir, budget))
        finally:
            m.close()
    return leaves


def make_zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def make_tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_7z(path: Path, files: dict[str, bytes], **kwargs: object) -> bytes:
    with py7zr.SevenZipFile(path, "w", **kwargs) as archive:  # type: ignore[arg-type]
        for name, data in files.items():
            archive.writestr(data, name)
    return path.read_bytes()


def local_header(
    name: bytes, method: int, crc: int, csize: int, usize: int, flags: int = 0
) -> bytes:
    return (
        struct.pack(
            "<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0, crc, csize, usize, len(name), 0
        )
        + name
    )


def central_header(
    name: bytes, method: int, crc: int, csize: int, usize: int, offset: int, flags: int = 0
) -> bytes:
    return (
        struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            flags,
            method,
            0,
            0,
            crc,
            csize,
            usize,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def zeros_deflate(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``mib`` MiB of zeros, built without ever holding them, + CRC."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)  # self-contained, not final
    crc, zero = 0, bytes(MiB)
    for _ in range(mib):
        crc = zlib.crc32(zero, crc)
    return block * mib + b"\x03\x00", crc


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


@pytest.fixture
def tmpdir_members(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "members"
    d.mkdir()
    yield d
    assert list(d.iterdir()) == [], "a member temp file was left behind"


# -- EICAR in every format ------------------------------------------------------------------
def _tar_eicar() -> bytes:
    return make_tar({"dir/eicar.com": EICAR})


EICAR_CASES: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "eicar.zip": (lambda _: make_zip({"eicar.com": EICAR}), "eicar.zip!eicar.com"),
    "eicar-stored.zip": (
        lambda _: make_zip({"e.com": EICAR}, zipfile.ZIP_STORED),
        "eicar-stored.zip!e.com",
    ),
    "eicar-bz2.zip": (
        lambda _: make_zip({"e.com": EICAR}, zipfile.ZIP_BZIP2),
        "eicar-bz2.zip!e.com",
    ),
    "eicar-lzma.zip": (
        lambda _: make_zip({"e.com": EICAR}, zipfile.ZIP_LZMA),
        "eicar-lzma.zip!e.com",
    ),
    "eicar.tar": (lambda _: _tar_eicar(), "eicar.tar!dir/eicar.com"),
    # a compressed tar reads as one container: no "!eicar.tar!" level in between
    "eicar.tar.gz": (lambda _: gzip.compress(_tar_eicar()), "eicar.tar.gz!dir/eicar.com"),
    "eicar.tar.bz2": (lambda _: bz2.compress(_tar_eicar()), "eicar.tar.bz2!dir/eicar.com"),
    "eicar.tar.xz": (lambda _: lzma.compress(_tar_eicar()), "eicar.tar.xz!dir/eicar.com"),
    "eicar.com.gz": (lambda _: gzip.compress(EICAR), "eicar.com.gz!eicar.com"),
    "eicar.com.bz2": (lambda _: bz2.compress(EICAR), "eicar.com.bz2!eicar.com"),
    "eicar.com.xz": (lambda _: lzma.compress(EICAR), "eicar.com.xz!eicar.com"),
    "eicar.com.lzma": (
        lambda _: lzma.compress(EICAR, format=lzma.FORMAT_ALONE),
        "eicar.com.lzma!eicar.com",
    ),
    "eicar.7z": (lambda tmp: make_7z(tmp / "e.7z", {"eicar.com": EICAR}), "eicar.7z!eicar.com"),
    "stream": (lambda _: gzip.compress(EICAR), "stream!stream.out"),
}


@pytest.mark.parametrize("name", sorted(EICAR_CASES))
def test_eicar_reached(name: str, tmp_path: Path, tmpdir_members: Path) -> None:
    build, expected = EICAR_CASES[name]
    data = build(tmp_path)
    assert walk(data, name, tmpdir_members, ExtractionBudget(ScanLimits())) == {expected: EICAR}


def test_nested_zip_in_tar_gz_in_zip(tmpdir_members: Path) -> None:
    deep = make_zip({"eicar.com": EICAR, "readme.txt": b"hello"})
    middle = gzip.compress(make_tar({"deep.zip": deep, "notes.txt": b"x" * 100}))
    outer = make_zip({"inner.tar.gz": middle, "eicar2.com": EICAR})
    budget = ExtractionBudget(ScanLimits())
    leaves = walk(outer, "outer.zip", tmpdir_members, budget)
    assert leaves == {
        "outer.zip!inner.tar.gz!deep.zip!eicar.com": EICAR,
        "outer.zip!inner.tar.gz!deep.zip!readme.txt": b"hello",
        "outer.zip!inner.tar.gz!notes.txt": b"x" * 100,
        "outer.zip!eicar2.com": EICAR,
    }
    assert budget.files_extracted == 6
    assert budget.bytes_extracted >= len(deep) + 2 * len(EICAR)


def test_concatenated_gzip_members_are_one_stream(tmpdir_members: Path) -> None:
    data = gzip.compress(b"first ") + gzip.compress(b"second") + bytes(8)  # + trailing zeros
    assert listing(data, "x.txt.gz", tmpdir_members) == [("x.txt", b"first second", 12)]


def test_py7zr_fallback_when_libarchive_is_missing(
    tmp_path: Path, tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
    files = {"a/eicar.com": EICAR, "b.bin": os.urandom(3000), "empty": b""}
    data = make_7z(tmp_path / "x.7z", files)
    got = {(n, d) for n, d, _ in listing(data, "x.7z", tmpdir_members)}
    assert got == set(files.items())
    # Formats only libarchive reads are then scanned as plain files.
    assert (
        iter_members(
            obj_for(b"MSCF\0\0\0\0" + bytes(64), "x.cab"),
            ExtractionBudget(ScanLimits()),
            tmpdir_members,
        )
        is None
    )


def test_py7zr_fallback_spills_and_limits(
    tmp_path: Path, tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
    big = os.urandom(200_000)
    data = make_7z(tmp_path / "x.7z", {"big.bin": big, "small": b"s"})
    limits = ScanLimits(in_memory_member_size=1000)
    members = list(members_of(data, "x.7z", tmpdir_members, limits))
    by_name = {m.name: m for m in members}
    assert isinstance(by_name["big.bin"].data, mmap.mmap) and by_name["big.bin"].data[:] == big
    assert by_name["small"].data == b"s"
    for m in members:
        m.close()
    with pytest.raises(LimitExceeded) as exc:
        listing(data, "x.7z", tmpdir_members, ScanLimits(max_scan_size=100_000))
    assert exc.value.limit == "max-scan-size"


def libarchive_archive(fmt: str, files: dict[str, bytes]) -> bytes:
    import libarchive

    chunks: list[bytes] = []

    def write(data: bytes) -> int:
        chunks.append(bytes(data))
        return len(data)

    with libarchive.custom_writer(write, fmt) as archive:
        for name, data in files.items():
            archive.add_file_from_memory(name, len(data), data)
    return b"".join(chunks)


@needs_libarchive
@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("cpio_newc", "x.cpio"),
        ("cpio", "x.cpio"),
        ("iso9660", "x.iso"),
        ("ar_svr4", "x.a"),
        ("7zip", "x.7z"),
    ],
)
def test_libarchive_formats_roundtrip(fmt: str, name: str, tmpdir_members: Path) -> None:
    data = libarchive_archive(fmt, {"eicar.com": EICAR, "other.txt": b"hello"})
    assert sniff(data) == {"x.cpio": "CPIO", "x.iso": "ISO", "x.a": "AR", "x.7z": "7Z"}[name]
    got = {n: d for n, d, _ in listing(data, name, tmpdir_members)}
    assert got == {"eicar.com": EICAR, "other.txt": b"hello"}


# -- clamav-testfiles -----------------------------------------------------------------------
CLAM_EXPECT_PE = [
    "clam.zip",
    "clam.7z",
    "clam.cab",
    "clam.tar.gz",
    "clam.bin-be.cpio",
    "clam.bin-le.cpio",
    "clam.newc.cpio",
    "clam.odc.cpio",
    "clam.exe.bz2",
    "clam.bz2.zip",
]


def _clam_walk(data: bytes, name: str, tmpdir: Path, depth: int = 0) -> tuple[bool, list[str]]:
    """(an MZ member was reached at any depth?, what came out, nested with '!')."""
    it = iter_members(obj_for(data, name), ExtractionBudget(ScanLimits()), tmpdir)
    if it is None:
        return False, []
    seen, reached = [], False
    try:
        for m in it:
            try:
                if m.problem:
                    seen.append(f"{m.name} ({m.problem})")
                    continue
                inner = bytes(m.data)
                seen.append(f"{m.name} ({sniff(inner[: 36 * 1024])})")
                reached |= inner[:2] == b"MZ"
                if depth < 16:
                    deeper, below = _clam_walk(inner, m.name, tmpdir, depth + 1)
                    reached |= deeper
                    seen.extend(f"{m.name}!{b}" for b in below)
            finally:
                m.close()
    except (ContainerError, LimitExceeded) as exc:
        seen.append(f"<{type(exc).__name__}: {exc}>")
    return reached, seen


def _clam_report(tmpdir: Path) -> dict[str, tuple[bool, list[str]]]:
    """For every container among the test files: (inner PE reached?, what came out)."""
    report = {}
    for path in sorted(CLAMAV_TESTFILES.iterdir()):
        data = path.read_bytes()
        filetype = obj_for(data, path.name).filetype
        if not is_container(filetype):
            continue
        if iter_members(obj_for(data, path.name), ExtractionBudget(ScanLimits()), tmpdir) is None:
            report[path.name] = (False, [f"<{filetype}: no unpacker>"])
            continue
        report[path.name] = _clam_walk(data, path.name, tmpdir)
    return report


@pytest.mark.skipif(not CLAMAV_TESTFILES.is_dir(), reason="clamav-testfiles not installed")
def test_clamav_testfiles(tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _clam_report(tmpdir_members)
    for name, (reached, seen) in report.items():
        print(f"{name:28} reached inner PE: {'yes' if reached else 'no '}  {seen}")
    for name in CLAM_EXPECT_PE:
        if (CLAMAV_TESTFILES / name).exists():
            assert report[name][0], (name, report[name])
    seven = CLAMAV_TESTFILES / "clam.7z"
    if seven.exists():
        monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
        reached, seen = _clam_walk(seven.read_bytes(), "clam.7z", tmpdir_members)
        label = "clam.7z (py7zr fallback)"
        print(f"{label:28} reached inner PE: {'yes' if reached else 'no '}  {seen}")
        assert reached


# -- bombs ----------------------------------------------------------------------------------
def _zip_bomb(mib: int, declared: int | None = None) -> bytes:
    stream, crc = zeros_deflate(mib)
    usize = mib * MiB if declared is None else declared
    name = b"zeros.bin"
    local = local_header(name, 8, crc, len(stream), usize)
    central = central_header(name, 8, crc, len(stream), usize, 0)
    return local + stream + central + end_record(1, len(central), len(local) + len(stream))


def test_ratio_bomb_stops_at_max_scan_size(tmpdir_members: Path) -> None:
    data = _zip_bomb(1024)  # 1 GiB of zeros in about 1 MB
    assert len(data) < 4 * MiB
    limits = ScanLimits(max_file_size=2048 * MiB)  # so the member is not skipped by its size
    assert limits.max_scan_size == 400 * MiB
    budget = ExtractionBudget(limits)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as exc:
            for m in iter_members(obj_for(data, "bomb.zip"), budget, tmpdir_members) or []:
                m.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.limit == "max-scan-size"
    assert 400 * MiB < budget.bytes_extracted <= 400 * MiB + 256 * 1024
    assert peak < 32 * MiB, f"peak Python memory {peak / MiB:.1f} MiB"


def test_ratio_bomb_gzip_stream(tmpdir_members: Path) -> None:
    stream, crc = zeros_deflate(1024)
    data = b"\x1f\x8b\x08\x00" + bytes(6) + stream + struct.pack("<LL", crc, 0)
    budget = ExtractionBudget(ScanLimits(max_file_size=0))
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded) as exc:
            for m in iter_members(obj_for(data, "zeros.gz"), budget, tmpdir_members) or []:
                m.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert exc.value.limit == "max-scan-size"
    assert peak < 32 * MiB


def test_lying_declared_size_is_cut_at_max_file_size(tmpdir_members: Path) -> None:
    data = _zip_bomb(300, declared=1000)  # claims 1000 bytes, inflates to 300 MiB
    budget = ExtractionBudget(ScanLimits())
    got = listing(data, "liar.zip", tmpdir_members)
    assert len(got) == 1 and str(got[0][1]).startswith("max-file-size")
    assert budget.bytes_extracted == 0  # (a separate budget was used above)
    it = iter_members(obj_for(data, "liar.zip"), budget, tmpdir_members)
    assert it is not None
    for m in it:
        m.close()
    assert budget.bytes_extracted <= 100 * MiB + 256 * 1024


@pytest.mark.parametrize(
    "kind", ["zip", "zip-bzip2", "tar.gz", "tar.xz", "bz2", "xz", "7z-libarchive", "7z-py7zr"]
)
def test_small_bombs_stop_at_max_scan_size(
    kind: str, tmp_path: Path, tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zeros = bytes(24 * MiB)
    if kind == "zip":
        data, name = make_zip({"z": zeros}), "b.zip"
    elif kind == "zip-bzip2":
        data, name = make_zip({"z": zeros}, zipfile.ZIP_BZIP2), "b.zip"
    elif kind == "tar.gz":
        data, name = gzip.compress(make_tar({"z": zeros}), 1), "b.tar.gz"
    elif kind == "tar.xz":
        data, name = lzma.compress(make_tar({"z": zeros}), preset=0), "b.tar.xz"
    elif kind == "bz2":
        data, name = bz2.compress(zeros, 1), "z.bz2"
    elif kind == "xz":
        data, name = lzma.compress(zeros, preset=0), "z.xz"
    else:
        if kind == "7z-libarchive" and not HAVE_LIBARCHIVE:
            pytest.skip("libarchive not importable")
        if kind == "7z-py7zr":
            monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
        data, name = make_7z(tmp_path / "b.7z", {"z": zeros}), "b.7z"
    assert len(data) < MiB
    budget = ExtractionBudget(ScanLimits(max_scan_size=4 * MiB))
    with pytest.raises(LimitExceeded) as exc:
        for m in iter_members(obj_for(data, name), budget, tmpdir_members) or []:
            m.close()
    assert exc.value.limit == "max-scan-size"
    assert budget.bytes_extracted <= 4 * MiB + 2 * MiB  # stopped within a chunk or two


def _overlap_bomb(copies: int) -> tuple[bytes, int]:
    """Fifield-style: every central-directory entry points at the same local file data."""
    stream, crc = zeros_deflate(10)
    local = local_header(b"kernel", 8, crc, len(stream), 10 * MiB)
    central = b"".join(
        central_header(b"f%d" % i, 8, crc, len(stream), 10 * MiB, 0) for i in range(copies)
    )
    body = local + stream
    return body + central + end_record(copies, len(central), len(body)), len(stream)


def test_overlapping_entries_zip_bomb(tmpdir_members: Path) -> None:
    data, _ = _overlap_bomb(20)
    obj = obj_for(data, "overlap.zip")
    findings = container_findings(obj)
    assert [f.name for f in findings] == ["Heuristics.Archive.OverlappingEntries"]
    f = findings[0]
    assert f.severity is Severity.SUSPICIOUS and f.kind is FindingKind.HEURISTIC
    assert f.score == 0.9 and f.detector == "container"
    assert f.details["overlapping_entries"] == 20
    budget = ExtractionBudget(ScanLimits())
    with pytest.raises(LimitExceeded) as exc:
        list(iter_members(obj, budget, tmpdir_members) or [])
    assert exc.value.limit == "zip-bomb"
    assert budget.bytes_extracted == 0  # nothing was inflated


def test_quoted_overlap_is_found_but_normal_zips_are_clean(tmpdir_members: Path) -> None:
    # Entry A's compressed data spans entry B's local header (the "quoted" construction).
    b_local = local_header(b"b", 0, zlib.crc32(b"bb"), 2, 2) + b"bb"
    a_data = b_local  # stored: A's content *is* B's header and data
    a_local = local_header(b"a", 0, zlib.crc32(a_data), len(a_data), len(a_data))
    body = a_local + a_data
    b_offset = len(a_local)
    central = central_header(
        b"a", 0, zlib.crc32(a_data), len(a_data), len(a_data), 0
    ) + central_header(b"b", 0, zlib.crc32(b"bb"), 2, 2, b_offset)
    data = body + central + end_record(2, len(central), len(body))
    assert [f.name for f in container_findings(obj_for(data, "q.zip"))] == [
        "Heuristics.Archive.OverlappingEntries"
    ]
    normal = make_zip({f"f{i}": os.urandom(100) for i in range(20)} | {"d/": b""})
    assert container_findings(obj_for(normal, "n.zip")) == []
    assert container_findings(obj_for(gzip.compress(b"x"), "n.gz")) == []
    assert container_findings(obj_for(b"PK\x03\x04garbage", "bad.zip")) == []


def test_absurd_declared_ratio_is_info_only(tmpdir_members: Path) -> None:
    data = _zip_bomb(1024)
    names = [(f.name, f.severity) for f in container_findings(obj_for(data, "bomb.zip"))]
    assert names == [("Heuristics.Archive.CompressionRatio", Severity.INFO)]


# -- names, temp files, limits --------------------------------------------------------------
EVIL_NAMES = ["../x", "/abs/x", "a/../../b", "c:/win/y", "odd\x1b[31mname!.exe"]


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz"])
def test_evil_names_are_only_labels(
    kind: str, tmp_path: Path, tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    files = {n: n.encode() * 50 for n in EVIL_NAMES}
    if kind == "zip":
        data = make_zip(files)
    else:
        data = make_tar(files)
        data = gzip.compress(data) if kind == "tar.gz" else data
    before = files_under(tmp_path)
    limits = ScanLimits(in_memory_member_size=0)  # every member goes through a temp file
    members = list(members_of(data, f"evil.{kind}", tmpdir_members, limits))
    names = [m.name for m in members]
    assert names == ["../x", "/abs/x", "a/../../b", "c:/win/y", "odd\\x1b[31mname!.exe"]
    assert all(isinstance(m.data, mmap.mmap) for m in members)
    assert [bytes(m.data) for m in members] == list(files.values())
    temp = files_under(tmpdir_members)
    assert len(temp) == len(members)
    assert all(p.parent == tmpdir_members and p.name.startswith("aegis-") for p in temp)
    for m in members:
        m.close()
    assert files_under(tmp_path) == before  # nothing created anywhere, nothing left behind
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


def test_large_member_goes_to_a_temp_file(tmpdir_members: Path) -> None:
    big, small = os.urandom(300_000), os.urandom(500)
    data = make_zip({"big.bin": big, "small.bin": small, "empty": b""})
    it = members_of(data, "x.zip", tmpdir_members, ScanLimits(in_memory_member_size=64 * 1024))
    m = next(it)
    assert m.name == "big.bin" and isinstance(m.data, mmap.mmap) and m.size == len(big)
    assert m.data[:] == big
    [temp] = files_under(tmpdir_members)
    assert temp.stat().st_size == len(big)
    m.close()
    assert not temp.exists()
    m2 = next(it)
    assert m2.data == small and isinstance(m2.data, bytes)
    m3 = next(it)
    assert (m3.name, m3.data, m3.size) == ("empty", b"", 0)
    assert files_under(tmpdir_members) == []
    with pytest.raises(StopIteration):
        next(it)


def test_max_files(tmpdir_members: Path) -> None:
    data = make_zip({f"f{i}": b"x" for i in range(5)})
    got = []
    with pytest.raises(LimitExceeded) as exc:
        for m in members_of(data, "x.zip", tmpdir_members, ScanLimits(max_files=2)):
            got.append(m.name)
    assert exc.value.limit == "max-files" and got == ["f0", "f1"]
    # The central directory is read lazily: at most 4 x max-files entries (directories do not
    # count as members, so they alone never reach max-files).
    many = make_zip({f"d{i}/": b"" for i in range(40)} | {"last": b"l"})
    with pytest.raises(LimitExceeded, match="holds more than 40 entries"):
        listing(many, "x.zip", tmpdir_members, ScanLimits(max_files=10))
    assert listing(many, "x.zip", tmpdir_members, ScanLimits(max_files=11)) == [("last", b"l", 1)]


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "7z"])
def test_max_file_size(kind: str, tmp_path: Path, tmpdir_members: Path) -> None:
    files = {"small": b"s" * 500, "big": os.urandom(5000), "after": b"a" * 10}
    if kind == "zip":
        data = make_zip(files)
    elif kind == "7z":
        data = make_7z(tmp_path / "x.7z", files)
    else:
        data = make_tar(files)
        data = gzip.compress(data) if kind == "tar.gz" else data
    got = {
        n: (d, s)
        for n, d, s in listing(data, f"x.{kind}", tmpdir_members, ScanLimits(max_file_size=1000))
    }
    assert got["small"] == (b"s" * 500, 500) and got["after"] == (b"a" * 10, 10)
    problem, size = got["big"]
    assert str(problem).startswith("max-file-size") and size == 5000


def test_max_file_size_of_a_stream_is_found_while_streaming(tmpdir_members: Path) -> None:
    data = gzip.compress(os.urandom(5000))  # a gzip stream declares no usable size
    budget = ExtractionBudget(ScanLimits(max_file_size=1000))
    [m] = list(iter_members(obj_for(data, "x.bin.gz"), budget, tmpdir_members) or [])
    assert m.problem and m.problem.startswith("max-file-size") and m.data == b""
    assert budget.bytes_extracted <= 256 * 1024 + 1000


# -- damage and encryption ------------------------------------------------------------------
@functools.cache
def _zip_variants() -> dict[str, bytes]:
    files = {"a.txt": b"hello" * 100, "d/": b"", "ünï.bin": os.urandom(300), "e": b""}
    plain = make_zip(files)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.comment = b"an archive comment"
        zf.writestr("c.txt", b"commented")
    commented = buf.getvalue()
    buf = io.BytesIO(b"#!/bin/sh\nexit 0\n" + b"\x00" * 1000)  # a self-extractor stub
    buf.seek(0, 2)
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("sfx.txt", b"after a stub")
    prepended = buf.getvalue()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(0x10005):  # more entries than a plain end record can count: ZIP64
            zf.writestr(zipfile.ZipInfo(f"{i:x}"), b"")
        zf.writestr("last", b"the last one")
    zip64 = buf.getvalue()
    return {"plain": plain, "commented": commented, "prepended": prepended, "zip64": zip64}


def test_central_directory_agrees_with_zipfile(tmpdir_members: Path) -> None:
    from aegis_engine.scanning.unpack_io import BufferReader
    from aegis_engine.scanning.unpack_zipdir import iter_entries

    for label, data in _zip_variants().items():
        reader = BufferReader(data)
        try:
            ours = [
                (e.name, e.header_offset, e.compress_size, e.file_size, e.crc)
                for e in iter_entries(reader)
            ]
        finally:
            reader.close()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            theirs = [
                (i.filename, i.header_offset, i.compress_size, i.file_size, i.CRC)
                for i in zf.infolist()
            ]
        assert ours == theirs, label
    variants = _zip_variants()
    obj = obj_for(variants["prepended"], "sfx", "ZIP")
    got = list(iter_members(obj, ExtractionBudget(ScanLimits()), tmpdir_members) or [])
    assert [(m.name, m.data) for m in got] == [("sfx.txt", b"after a stub")]
    assert listing(variants["commented"], "c.zip", tmpdir_members) == [("c.txt", b"commented", 9)]
    # An end-record signature inside the comment is not taken for the real one.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.comment = b"PK\x05\x06 looks like an end record, but is a comment"
        zf.writestr("c.txt", b"commented")
    assert listing(buf.getvalue(), "t.zip", tmpdir_members) == [("c.txt", b"commented", 9)]
    it = members_of(variants["zip64"], "z.zip", tmpdir_members, ScanLimits(max_files=0))
    *_, last = it
    assert (last.name, last.data) == ("last", b"the last one")


def test_truncated_zip(tmpdir_members: Path) -> None:
    data = make_zip({"a": os.urandom(5000), "b": b"b"})
    with pytest.raises(ContainerError):
        listing(data[: len(data) // 2], "x.zip", tmpdir_members)
    with pytest.raises(ContainerError):
        listing(data[:-10], "x.zip", tmpdir_members)  # end record cut


def test_corrupt_zip_member_yields_the_rest_then_errors(tmpdir_members: Path) -> None:
    data = bytearray(make_zip({"a": b"A" * 1000, "b": b"B" * 1000}, zipfile.ZIP_STORED))
    data[40:45] = b"XXXXX"  # inside a's data: CRC mismatch
    got = []
    with pytest.raises(ContainerError, match="CRC"):
        for m in members_of(bytes(data), "x.zip", tmpdir_members):
            got.append(m.name)
    assert got == ["a", "b"]


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_truncated_stream(compress: object, tmpdir_members: Path) -> None:
    payload = os.urandom(20_000)
    data = compress(payload)  # type: ignore[operator]
    name = {"gzip": "x.gz", "bz2": "x.bz2", "lzma": "x.xz"}[compress.__module__]  # type: ignore[attr-defined]
    with pytest.raises(ContainerError):
        listing(data[: len(data) // 2], name, tmpdir_members)
    tar_gz = gzip.compress(make_tar({"a": payload}))
    with pytest.raises(ContainerError):
        listing(tar_gz[: len(tar_gz) * 3 // 4], "x.tar.gz", tmpdir_members)


def test_oversized_tar_header_is_refused_without_reading_it(tmpdir_members: Path) -> None:
    longname = tarfile.TarInfo("././@LongLink")
    longname.type = tarfile.GNUTYPE_LONGNAME
    longname.size = 1 << 30  # tarfile would read the whole "name" into memory
    data = gzip.compress(longname.tobuf(format=tarfile.GNU_FORMAT) + bytes(8192))
    budget = ExtractionBudget(ScanLimits())
    with pytest.raises(ContainerError, match="oversized header"):
        list(iter_members(obj_for(data, "x.tar.gz"), budget, tmpdir_members) or [])
    assert budget.bytes_extracted < MiB


def test_zip64_member(tmpdir_members: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("big.bin", "w", force_zip64=True) as fh:
            fh.write(EICAR)
        zf.writestr("small", b"s")
    assert listing(buf.getvalue(), "x.zip", tmpdir_members) == [
        ("big.bin", EICAR, len(EICAR)),
        ("small", b"s", 1),
    ]


def test_damaged_gzip_data(tmpdir_members: Path) -> None:
    data = bytearray(gzip.compress(os.urandom(2000)))
    data[-8] ^= 0xFF  # CRC
    with pytest.raises(ContainerError):
        listing(bytes(data), "x.gz", tmpdir_members)


def test_garbage_7z(tmpdir_members: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(200)
    with pytest.raises(ContainerError):
        listing(data, "x.7z", tmpdir_members)
    monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
    with pytest.raises(ContainerError):
        listing(data, "x.7z", tmpdir_members)


def test_encrypted_zip_member(tmpdir_members: Path) -> None:
    data = bytearray(
        make_zip({"secret.exe": b"ciphertext" * 10, "plain.txt": b"p"}, zipfile.ZIP_STORED)
    )
    data[6] |= 1  # local header general purpose flag: encrypted
    cd = data.index(b"PK\x01\x02")
    data[cd + 8] |= 1  # central directory flag
    got = listing(bytes(data), "x.zip", tmpdir_members)
    assert got[0][0] == "secret.exe" and str(got[0][1]).startswith("encrypted")
    assert got[1] == ("plain.txt", b"p", 1)


@pytest.mark.parametrize("backend", ["libarchive", "py7zr"])
@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z(
    backend: str,
    header_encryption: bool,
    tmp_path: Path,
    tmpdir_members: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "libarchive" and not HAVE_LIBARCHIVE:
        pytest.skip("libarchive not importable")
    if backend == "py7zr":
        monkeypatch.setattr(unpack_libarchive, "HAVE_LIBARCHIVE", False)
    data = make_7z(
        tmp_path / "x.7z", {"secret.exe": EICAR}, password="pw", header_encryption=header_encryption
    )
    got = listing(data, "x.7z", tmpdir_members)
    assert got and all(str(problem).startswith("encrypted") for _, problem, _ in got)


def test_links_dirs_and_devices_in_tar_are_skipped(tmp_path: Path, tmpdir_members: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind in [
            ("d", tarfile.DIRTYPE),
            ("sym", tarfile.SYMTYPE),
            ("hard", tarfile.LNKTYPE),
            ("dev", tarfile.CHRTYPE),
            ("fifo", tarfile.FIFOTYPE),
        ]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
            tf.addfile(info)
        info = tarfile.TarInfo("real.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"real"))
    assert listing(buf.getvalue(), "x.tar", tmpdir_members) == [("real.txt", b"real", 4)]
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_symlink_and_dir_in_zip_are_skipped(tmpdir_members: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("link")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("dir/", b"")
        zf.writestr("file", b"f")
    assert listing(buf.getvalue(), "x.zip", tmpdir_members) == [("file", b"f", 1)]


def test_view_on_an_mmapped_container_is_released(tmp_path: Path, tmpdir_members: Path) -> None:
    cases = {
        "x.zip": make_zip({"a": b"a" * 100, "b": b"b"}),
        "x.tar.gz": gzip.compress(make_tar({"a": b"a" * 100, "b": b"b"})),
        "x.7z": make_7z(tmp_path / "x.7z", {"a": b"a" * 100, "b": b"b"}),
        "x.gz": gzip.compress(b"a" * 100),
    }
    for name, content in cases.items():
        path = tmp_path / ("m-" + name)
        path.write_bytes(content)
        for partial in (False, True):
            with path.open("rb") as fh:
                view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            it = members_of(view, name, tmpdir_members)
            for m in it:
                m.close()
                if partial:
                    break
            it.close()  # type: ignore[attr-defined]
            view.close()  # raises BufferError if a view on it were still alive


def test_not_a_container(tmpdir_members: Path) -> None:
    budget = ExtractionBudget(ScanLimits())
    for data, name in [(b"MZ" + bytes(100), "x.exe"), (b"hello", "x.txt"), (b"\x7fELF", "x")]:
        assert iter_members(obj_for(data, name), budget, tmpdir_members) is None


# -- fuzzing: only ContainerError / LimitExceeded ever come out -----------------------------
def _seeds() -> list[tuple[str, bytes]]:
    tar = make_tar({"a.txt": b"hello" * 20, "b/c.bin": bytes(range(256))})
    seeds = [
        ("ZIP", make_zip({"a.txt": b"hello" * 20, "b.bin": bytes(range(256))})),
        ("ZIP", make_zip({"a": b"x" * 300}, zipfile.ZIP_BZIP2)),
        ("ZIP", make_zip({"a": b"x" * 300}, zipfile.ZIP_LZMA)),
        ("TAR", tar),
        ("GZIP", gzip.compress(tar)),
        ("GZIP", gzip.compress(b"plain")),
        ("BZIP2", bz2.compress(tar)),
        ("XZ", lzma.compress(tar)),
        ("LZMA", lzma.compress(b"lzma data" * 10, format=lzma.FORMAT_ALONE)),
        ("7Z", b"7z\xbc\xaf\x27\x1c\x00\x04"),
        ("7Z", _py7zr_bytes({"a.txt": b"hello" * 20, "b.bin": bytes(range(256))})),
        ("RAR", b"Rar!\x1a\x07\x00"),
        ("RAR", b"Rar!\x1a\x07\x01\x00"),
        ("CAB", b"MSCF\x00\x00\x00\x00"),
        ("CPIO", b"070701"),
        ("CPIO", b"\xc7\x71"),
        ("ISO", bytes(0x8001) + b"CD001\x01"),
        ("AR", b"!<arch>\n"),
        ("ARJ", b"\x60\xea\x2c\x00"),
    ]
    if HAVE_LIBARCHIVE:
        files = {"a.txt": b"hello" * 20, "b/c.bin": bytes(range(256))}
        for filetype, fmt in [
            ("CPIO", "cpio_newc"),
            ("CPIO", "cpio"),
            ("ISO", "iso9660"),
            ("AR", "ar_svr4"),
            ("7Z", "7zip"),
        ]:
            seeds.append((filetype, libarchive_archive(fmt, files)))
    cab = CLAMAV_TESTFILES / "clam.cab"
    if cab.exists():
        seeds.append(("CAB", cab.read_bytes()))
    return seeds


def _py7zr_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as archive:
        for name, data in files.items():
            archive.writestr(data, name)
    return buf.getvalue()


SEEDS = _seeds()


@settings(
    max_examples=int(os.environ.get("FUZZ_N", "200")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    seed=st.sampled_from(SEEDS),
    tail=st.binary(max_size=1500),
    cut=st.integers(min_value=0, max_value=4000),
    flips=st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 255)), max_size=6),
    use_libarchive=st.booleans(),
)
def test_fuzz_only_container_errors(
    seed: tuple[str, bytes],
    tail: bytes,
    cut: int,
    flips: list[tuple[int, int]],
    use_libarchive: bool,
    tmp_path: Path,
) -> None:
    filetype, base = seed
    data = bytearray(base[: max(len(base) - cut, min(len(base), 8))] + tail)
    for pos, value in flips:
        if len(data) > 8:
            data[8 + pos % (len(data) - 8)] = value
    blob = bytes(data)
    sniff(blob)
    tmpdir = tmp_path / "fuzz"
    tmpdir.mkdir(exist_ok=True)
    limits = ScanLimits(max_scan_size=4 * MiB, max_file_size=MiB, in_memory_member_size=1024)
    with mock.patch.object(
        unpack_libarchive, "HAVE_LIBARCHIVE", use_libarchive and HAVE_LIBARCHIVE
    ):
        for ft in {filetype, sniff(blob)}:
            container_findings(obj_for(blob, "f", ft))
            it = iter_members(obj_for(blob, "f", ft), ExtractionBudget(limits), tmpdir)
            if it is None:
                continue
            try:
                for m in it:
                    m.close()
            except (ContainerError, LimitExceeded):
                pass
    assert list(tmpdir.iterdir()) == []


def test_libarchive_types_listed_for_lazy_loading_match_its_formats() -> None:
    from aegis_engine.scanning.containers import _LIBARCHIVE_TYPES

    assert set(unpack_libarchive.FORMATS) == _LIBARCHIVE_TYPES
