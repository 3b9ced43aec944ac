"""PE header features: exact values on a built PE file, and robustness on malformed input."""

from __future__ import annotations

import math
import mmap
import random
import struct
import time
from pathlib import Path

import pytest
from helpers.pe_build import LFANEW, build_pe
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis_engine.ml import features
from aegis_engine.ml.features import (
    FEATURE_NAMES,
    HEADER_FIELDS,
    HEADER_WINDOW,
    FeatureStatus,
    extract,
    vector_from_header,
)


def expected_header(magic: int = 0x10B) -> dict[str, float]:
    return {
        "e_cblp": 0x90,
        "e_cp": 3,
        "e_cparhdr": 4,
        "e_maxalloc": 0xFFFF,
        "e_sp": 0xB8,
        "e_lfarlc": 0x40,
        "e_lfanew": LFANEW,
        "NumberOfSections": 2,
        "SizeOfOptionalHeader": 224 if magic == 0x10B else 240,
        "Characteristics": 0x0102,
        "Magic": magic,
        "MajorLinkerVersion": 14,
        "MinorLinkerVersion": 29,
        "SizeOfCode": 0x1000,
        "SizeOfInitializedData": 0x800,
        "AddressOfEntryPoint": 0x1010,
        "BaseOfCode": 0x1000,
        "ImageBase": 0x400000 if magic == 0x10B else 0x140000000,
        "SectionAlignment": 0x1000,
        "FileAlignment": 0x200,
        "MajorOperatingSystemVersion": 6,
        "MajorImageVersion": 1,
        "MinorImageVersion": 2,
        "MajorSubsystemVersion": 6,
        "SizeOfImage": 0x4000,
        "SizeOfHeaders": 0x400,
        "CheckSum": 0x1234,
        "Subsystem": 2 if magic == 0x10B else 3,
        "DllCharacteristics": 0x8140,
        "SizeOfStackReserve": 0x100000,
        "SizeOfStackCommit": 0x1000,
        "SizeOfHeapReserve": 0x100000,
        "SizeOfHeapCommit": 0x1000,
        "NumberOfRvaAndSizes": 16,
    }


@pytest.mark.parametrize("magic", [0x10B, 0x20B])
def test_header_values_are_read_exactly(magic: int) -> None:
    res = extract(build_pe(magic=magic))
    assert res.status is FeatureStatus.OK, res.reason
    assert len(res.values) == len(FEATURE_NAMES)
    got = dict(zip(FEATURE_NAMES, res.values, strict=True))
    for name in HEADER_FIELDS:
        assert got[name] == expected_header(magic).get(name, 0), name
    assert got["Characteristics_0x0002"] == 1.0 and got["Characteristics_0x2000"] == 0.0
    assert got["DllCharacteristics_0x0040"] == 1.0 and got["DllCharacteristics_0x8000"] == 1.0
    assert got["EntryPointInCode"] == 1.0
    assert got["EntryPointBeyondImage"] == 0.0
    assert got["CodeToImageRatio"] == 0.25
    assert got["CheckSumIsZero"] == 0.0
    # Header consistency (added with model 1.1.0): every size is a multiple of its alignment.
    for name in (
        "SizeOfImageAligned",
        "SizeOfHeadersAligned",
        "SizeOfCodeAligned",
        "SizeOfInitializedDataAligned",
        "BaseOfCodeAligned",
    ):
        assert got[name] == 1.0, name
    assert got["UninitDataToImageRatio"] == 0.0
    assert got["DeclaredSizesToImageRatio"] == (0x1000 + 0x800) / 0x4000
    assert got["HeadersToImageRatio"] == 0x400 / 0x4000
    assert got["EntryPointOffsetInCodeRatio"] == 0x10 / 0x1000
    assert got["EntryPointToImageRatio"] == 0x1010 / 0x4000


def test_matches_pefile_on_the_whole_file() -> None:
    import pefile

    data = build_pe(nsections=5)
    pe = pefile.PE(data=data, fast_load=True)
    ref = []
    for name in HEADER_FIELDS:
        for s in (pe.DOS_HEADER, pe.FILE_HEADER, pe.OPTIONAL_HEADER):
            if hasattr(s, name):
                ref.append(float(getattr(s, name)))
                break
    assert extract(data).values[: len(HEADER_FIELDS)] == tuple(ref)


def test_mmap_and_bytes_agree(tmp_path: Path) -> None:
    p = tmp_path / "a.exe"
    p.write_bytes(build_pe())
    with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert extract(mm) == extract(p.read_bytes())
        assert extract(memoryview(mm)) == extract(p.read_bytes())


def test_vector_from_header_is_what_tables_use() -> None:
    header = {name: 0.0 for name in HEADER_FIELDS}
    header.update(Characteristics=0x2002, DllCharacteristics=0x0140, SizeOfImage=0)
    v = dict(zip(FEATURE_NAMES, vector_from_header(header), strict=True))
    assert v["Characteristics_0x2000"] == 1.0 and v["Characteristics_0x0002"] == 1.0
    assert v["CodeToImageRatio"] == -1.0  # no division by zero
    assert v["CheckSumIsZero"] == 1.0
    assert v["SizeOfImageAligned"] == -1.0  # alignment 0: no modulo by zero either
    assert v["EntryPointOffsetInCodeRatio"] == -1.0
    with pytest.raises(KeyError):
        vector_from_header({"e_cblp": 1.0})


def test_misaligned_and_odd_headers_show_in_the_consistency_features() -> None:
    header = {name: 0.0 for name in HEADER_FIELDS}
    header.update(
        SectionAlignment=0x1000,
        FileAlignment=0x200,
        SizeOfImage=0x4100,  # not a multiple of SectionAlignment
        SizeOfHeaders=0x400,
        SizeOfCode=0x1001,  # not a multiple of FileAlignment
        SizeOfInitializedData=0x200,
        SizeOfUninitializedData=0x8000,  # UPX-like: most of the image is uninitialised
        BaseOfCode=0x1000,
        AddressOfEntryPoint=0x800,  # before the code
    )
    v = dict(zip(FEATURE_NAMES, vector_from_header(header), strict=True))
    assert v["SizeOfImageAligned"] == 0.0 and v["SizeOfCodeAligned"] == 0.0
    assert v["SizeOfHeadersAligned"] == 1.0 and v["SizeOfInitializedDataAligned"] == 1.0
    assert v["UninitDataToImageRatio"] == 0x8000 / 0x4100
    assert v["EntryPointOffsetInCodeRatio"] == (0x800 - 0x1000) / 0x1001 < 0
    header.update(SizeOfImage=1.0, SizeOfUninitializedData=2.0**40)
    v = dict(zip(FEATURE_NAMES, vector_from_header(header), strict=True))
    assert v["UninitDataToImageRatio"] == 1000.0  # capped


def test_feature_names_only_grow() -> None:
    """Model 1.0.0's 86 inputs keep their names and places, so a manifest that lists them
    still finds them (the detector picks a model's inputs by name)."""
    assert FEATURE_NAMES[:86] == HEADER_FIELDS + features.DERIVED_FIELDS
    assert FEATURE_NAMES[86:] == features.STRUCTURE_FIELDS
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)


def test_columns_for() -> None:
    assert features.columns_for(["Magic", "e_cblp"]) == (
        FEATURE_NAMES.index("Magic"),
        0,
    )
    assert features.columns_for([]) == ()
    with pytest.raises(KeyError, match="NoSuchField"):
        features.columns_for(["Magic", "NoSuchField"])


# Malformed input -----------------------------------------------------------------------


def test_not_pe() -> None:
    assert extract(b"").status is FeatureStatus.NOT_PE
    assert extract(b"\x7fELF" + bytes(200)).status is FeatureStatus.NOT_PE
    assert extract(b"ZM" + bytes(200)).status is FeatureStatus.NOT_PE
    dos_only = bytearray(build_pe())
    dos_only[LFANEW : LFANEW + 4] = b"NE\0\0"
    assert extract(bytes(dos_only)).status is FeatureStatus.NOT_PE


def test_every_truncation_of_the_headers() -> None:
    data = build_pe()
    needed = LFANEW + 24 + 112
    for n in range(len(data) + 1):
        res = extract(data[:n])
        if n < 2:
            assert res.status is FeatureStatus.NOT_PE
        elif n < needed:
            assert res.status in (FeatureStatus.UNPARSEABLE, FeatureStatus.NOT_PE), n
            assert res.values == ()
        elif n < LFANEW + 24 + 224:  # inside the data directories: pefile may refuse
            assert res.status in (FeatureStatus.UNPARSEABLE, FeatureStatus.OK), n
        else:
            assert res.status is FeatureStatus.OK, (n, res.reason)


def test_truncated_prefix_of_a_larger_file() -> None:
    data = build_pe()
    res = extract(data[:0x50], size=len(data))  # only a prefix given, file is larger
    assert res.status is FeatureStatus.UNPARSEABLE


@pytest.mark.parametrize("lfanew", [0xFFFFFFF0, 0x7FFFFFFF, 10**6])
def test_e_lfanew_past_the_end(lfanew: int) -> None:
    data = bytearray(build_pe())
    struct.pack_into("<I", data, 0x3C, lfanew)
    res = extract(bytes(data))
    assert res.status is FeatureStatus.UNPARSEABLE
    assert "past the end" in res.reason


def test_e_lfanew_beyond_the_cap_is_not_followed() -> None:
    far = features.MAX_LFANEW + 0x1000
    data = build_pe(lfanew=far)
    assert extract(data).status is FeatureStatus.UNPARSEABLE


def test_absurd_section_count_is_bounded() -> None:
    # 65535 sections declared, a full section table of junk, normal optional header.
    junk = bytes(random.Random(1).getrandbits(8) | 1 for _ in range(40 * 5000))
    data = build_pe(nsections=0xFFFF, section_blob=junk)
    start = time.perf_counter()
    res = extract(data)
    assert res.status is FeatureStatus.OK
    assert dict(zip(FEATURE_NAMES, res.values, strict=True))["NumberOfSections"] == 0xFFFF
    # Short optional header: pefile must parse sections, but at most MAX_SECTIONS of them.
    data = build_pe(nsections=0xFFFF, opt_size=0, section_blob=junk)
    res2 = extract(data)
    assert res2.status in (FeatureStatus.OK, FeatureStatus.UNPARSEABLE)
    assert time.perf_counter() - start < 2.0


def test_huge_offsets_and_sizes_in_fields() -> None:
    sections = struct.pack(
        "<8sIIIIIIHHI",
        b".text",
        0xFFFFFFFF,
        0xFFFFF000,
        0xFFFFFFFF,
        0xFFFFFFF0,
        0xFFFFFFFF,
        0,
        0,
        0,
        0xE0000020,
    )
    data = build_pe(nsections=1, entry=0xFFFFFFFF, section_blob=sections)
    res = extract(data)
    assert res.status is FeatureStatus.OK
    got = dict(zip(FEATURE_NAMES, res.values, strict=True))
    assert got["AddressOfEntryPoint"] == 0xFFFFFFFF
    assert got["EntryPointBeyondImage"] == 1.0
    assert got["EntryPointInCode"] == 0.0


def test_unknown_optional_header_magic() -> None:
    data = bytearray(build_pe())
    struct.pack_into("<H", data, LFANEW + 24, 0x107)  # ROM image magic
    assert extract(bytes(data)).status is FeatureStatus.UNPARSEABLE


def test_reads_only_the_header_window() -> None:
    class Spy(bytes):
        furthest = 0

        def __getitem__(self, key):  # type: ignore[no-untyped-def,override]
            if isinstance(key, slice):
                Spy.furthest = max(Spy.furthest, key.stop or len(self))
            else:
                Spy.furthest = max(Spy.furthest, key + 1)
            return super().__getitem__(key)

    big = Spy(build_pe() + bytes(8 * 1024 * 1024))
    assert extract(big).status is FeatureStatus.OK
    assert Spy.furthest <= HEADER_WINDOW
    assert Spy.furthest < 4096


def test_random_bytes_after_mz_never_raise() -> None:
    rng = random.Random(20240917)
    for _ in range(300):
        n = rng.randrange(2, 4096)
        blob = b"MZ" + bytes(rng.getrandbits(8) for _ in range(n))
        res = extract(blob)
        assert res.status in set(FeatureStatus)
    # random bytes behind a valid PE signature: the parse goes deeper
    for _ in range(300):
        blob = bytearray(build_pe())
        for _ in range(rng.randrange(1, 40)):
            blob[rng.randrange(0x40, LFANEW + 24 + 240)] = rng.getrandbits(8)
        res = extract(bytes(blob))
        if res.ok:
            assert len(res.values) == len(FEATURE_NAMES)
            assert all(math.isfinite(v) for v in res.values)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=2048), st.integers(min_value=0, max_value=2**32 - 1))
def test_fuzz_headers_never_raise(tail: bytes, lfanew: int) -> None:
    head = bytearray(b"MZ" + bytes(0x3E))
    struct.pack_into("<I", head, 0x3C, lfanew)
    res = extract(bytes(head) + b"PE\0\0" + tail)
    assert isinstance(res.status, FeatureStatus)
    if res.ok:
        assert len(res.values) == len(FEATURE_NAMES)
