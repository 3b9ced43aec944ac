"""Runtime packers opened by our emulating unpacker (issue 17): ClamAV's packed test programs
unpacked by emulation (the ``packers`` extra: the Unicorn CPU emulator), and hostile stubs
(one that loops forever, one that writes without end, damaged headers) ending within the
limits as incomplete or with nothing, never a hang or a crash."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
from test_containers import obj_for
from test_formats import PAYLOAD, _clam, _clam_body, leaves

from aegis_engine.config import ScanLimits
from aegis_engine.errors import ContainerError, LimitExceeded
from aegis_engine.scanning import unpack_packer
from aegis_engine.scanning.budget import ExtractionBudget
from aegis_engine.scanning.containers import iter_members
from aegis_engine.scanning.unpack_emu_carve import MAX_ZIPS, carve_zips

needs_unicorn = pytest.mark.skipif(
    not unpack_packer.available(),
    reason='the Unicorn emulator (optional extra: pip install -e ".[packers]") is not installed',
)
EMULATED = ["aspack", "mew", "pespin", "petite", "upack", "wwpack", "yc"]
"""ClamAV's samples our emulator opens (clam-upx.exe is decoded natively, test_formats)."""
BASE = 0x400000


def make_pe(code: bytes, section: bytes = b".petite", image_pages: int = 3) -> bytes:
    """A minimal PE32 whose one section (named ``section``, raw size 0x200) holds ``code`` at
    the entry point, with no imports."""
    mz = bytearray(0x40)
    mz[:2] = b"MZ"
    struct.pack_into("<I", mz, 0x3C, 0x40)
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x102)
    opt = bytearray(0xE0)
    struct.pack_into("<HBBIII", opt, 0, 0x10B, 1, 0, 0x200, 0, 0)
    struct.pack_into("<III", opt, 16, 0x1000, 0x1000, 0x1000)  # entry, code base, data base
    struct.pack_into("<III", opt, 28, BASE, 0x1000, 0x200)
    struct.pack_into("<HHHHHH", opt, 40, 4, 0, 0, 0, 4, 0)
    struct.pack_into("<IIII", opt, 56, 0x1000 * image_pages, 0x200, 0, 2)
    struct.pack_into("<IIII", opt, 72, 0x100000, 0x1000, 0x100000, 0x1000)
    struct.pack_into("<I", opt, 92, 16)
    entry = section.ljust(8, b"\x00")[:8] + struct.pack(
        "<IIIIIIHHI", 0x1000 * (image_pages - 1), 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0xE0000060
    )
    head = bytes(mz) + coff + bytes(opt) + entry
    return head.ljust(0x200, b"\x00") + code.ljust(0x200, b"\x90")


def test_packers_are_recognised_from_the_headers() -> None:
    for packer in [*EMULATED, "upx"]:
        assert unpack_packer.packer_of(_clam(f"clam-{packer}.exe")) == packer
    for plain in ("clam.exe", "clam-fsg.exe", "clam-nsis.exe"):
        assert unpack_packer.packer_of(_clam(plain)) is None, plain
    assert unpack_packer.packer_of(make_pe(b"\xc3", b".text")) is None


@needs_unicorn
@pytest.mark.parametrize("packer", EMULATED)
def test_clamav_packed_samples_unpacked_by_emulation(tmp_path: Path, packer: str) -> None:
    name = f"clam-{packer}.exe"
    packed = _clam(name)
    assert _clam_body() not in packed
    got = leaves(packed, name, tmp_path)
    hits = [k for k, v in got.items() if _clam_body() in v]
    assert hits, list(got)
    assert all(k.startswith(f"{name}!unpacked-{packer}") for k in hits), hits


@needs_unicorn
def test_the_dump_is_a_pe_whose_entry_point_is_the_original_one(tmp_path: Path) -> None:
    got = leaves(_clam("clam-aspack.exe"), "a.exe", tmp_path)
    image = got["a.exe!unpacked-aspack"]
    lfanew = struct.unpack_from("<I", image, 0x3C)[0]
    assert image[lfanew : lfanew + 4] == b"PE\x00\x00"
    entry = struct.unpack_from("<I", image, lfanew + 40)[0]
    assert entry == 0x1020  # the unpacked program's start, not ASPack's stub at 0x5001
    assert image[entry : entry + 2] != b"\x00\x00"


def test_zips_in_a_dump_are_carved_even_without_their_end_record() -> None:
    from test_containers import make_zip

    archive = make_zip({"a.exe": PAYLOAD})
    dump = b"\x00" * 100 + archive + b"\x01" * 50
    assert carve_zips(dump) == [archive]
    damaged = dump[: 100 + len(archive) - 10] + b"\x01" * 60  # end record overwritten
    (rebuilt,) = carve_zips(damaged)
    with zipfile.ZipFile(io.BytesIO(rebuilt)) as z:
        assert z.read("a.exe") == PAYLOAD
    assert len(carve_zips(archive * 40)) == MAX_ZIPS
    assert carve_zips(b"PK\x03\x04" + b"\xff" * 40) == []  # sizes past the end


def _members(data: bytes, tmp_path: Path, limits: ScanLimits) -> list[tuple[str, str | None]]:
    got = []
    for m in iter_members(obj_for(data, "p.exe"), ExtractionBudget(limits), tmp_path) or ():
        got.append((m.name, m.problem))
        m.close()
    return got


@needs_unicorn
def test_a_stub_that_loops_forever_ends_incomplete(tmp_path: Path) -> None:
    looping = make_pe(b"\xeb\xfe")  # jmp $
    got = _members(looping, tmp_path, ScanLimits(max_scan_time=5))
    assert len(got) == 1, got
    name, problem = got[0]
    assert name == "unpacked-petite-emulation"
    assert (problem or "").startswith("max-scan-time: petite emulation stopped at its time limit")
    assert not list(tmp_path.iterdir())


@needs_unicorn
def test_a_stub_that_writes_without_end(tmp_path: Path) -> None:
    # mov edi, base+0x2000; l: stosd; inc eax; jmp l (the same page written again and again)
    code = b"\xbf" + struct.pack("<I", BASE + 0x2000) + b"\xab\x40\x81\xff"
    code += struct.pack("<I", BASE + 0x2800) + b"\x72\xf6\xbf" + struct.pack("<I", BASE + 0x2000)
    code += b"\xeb\xef"
    got = _members(make_pe(code), tmp_path, ScanLimits(max_scan_time=5))
    names = [n for n, _ in got]
    assert names == ["unpacked-petite", "unpacked-petite-emulation"], got
    assert (got[1][1] or "").startswith("max-scan-time: petite emulation stopped at its time")
    # rep stosd over the whole address space: stops at the end of the image, which is dumped
    flood = b"\xbf" + struct.pack("<I", BASE + 0x2000) + b"\xb9\xff\xff\xff\x3f\xf3\xab\xc3"
    assert _members(make_pe(flood), tmp_path, ScanLimits()) == [("unpacked-petite", None)]
    got = _members(make_pe(flood), tmp_path, ScanLimits(max_file_size=0x1000))
    assert [n for n, _ in got] == ["unpacked-petite"], got  # a dump over max-file-size
    assert (got[0][1] or "").startswith("max-file-size"), got


def _outcome(data: bytes, tmp_path: Path) -> str:
    """How opening ``data`` ends: never with an error other than a limit or damage."""
    budget = ExtractionBudget(ScanLimits(max_scan_time=10))
    members = iter_members(obj_for(data, "p.exe"), budget, tmp_path)
    try:
        problems = [m.problem for m in members or ()]
    except LimitExceeded as exc:
        return f"limit: {exc.limit}"
    except ContainerError:
        return "damaged"
    return "incomplete" if any(problems) else "done"


@needs_unicorn
def test_damaged_packed_files_give_nothing_or_incomplete(tmp_path: Path) -> None:
    for name in ("clam-mew.exe", "clam-upack.exe", "clam-pespin.exe", "clam-yc.exe"):
        data = _clam(name)
        for damaged in (
            data[:0x180],  # headers only
            data[:0x200] + b"\xff" * (len(data) - 0x200),
            data[:0x200] + bytes(len(data) - 0x200),
            data[:0x3C] + struct.pack("<I", 0x7FFFFFF0) + data[0x40:],  # header offset outside
        ):
            assert _outcome(damaged, tmp_path) in ("done", "incomplete", "damaged"), name
    huge = bytearray(make_pe(b"\xc3"))
    struct.pack_into("<I", huge, 0x40 + 24 + 56, 0x7FFF0000)  # SizeOfImage: 2 GiB
    assert _members(bytes(huge), tmp_path, ScanLimits()) == []
    assert not list(tmp_path.iterdir())
