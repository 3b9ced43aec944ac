"""Documents, mail, installers and legacy archives (issue 17): each format opened (built here,
or from clamav-testfiles), and hostile cases ending within the limits as incomplete or clean."""

from __future__ import annotations

import base64
import binascii
import email.mime.application
import email.mime.multipart
import email.mime.text
import os
import shutil
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest
from conftest import CLAMAV_TESTFILES, EICAR
from test_containers import central_header, end_record, local_header, obj_for

from aegis_engine import Engine, FileReport, Verdict
from aegis_engine.config import ScanLimits, ScanOptions
from aegis_engine.detectors.base import Buffer
from aegis_engine.errors import ContainerError, LimitExceeded
from aegis_engine.scanning import unpack_7zz, unpack_packer, unpack_unshield
from aegis_engine.scanning.budget import ExtractionBudget, Member
from aegis_engine.scanning.containers import iter_members
from aegis_engine.scanning.sniff import sniff

HAVE_7ZZ = unpack_7zz.tool_path() is not None
needs_7zz = pytest.mark.skipif(not HAVE_7ZZ, reason="7zz (Debian package 7zip) not installed")
PAYLOAD = b"MZ" + bytes(range(256)) * 4 + b"payload-end"


def _clam(name: str) -> bytes:
    path = CLAMAV_TESTFILES / name
    if not path.exists():
        pytest.skip(f"{path} missing (Debian package clamav-testfiles)")
    return path.read_bytes()


def _clam_body() -> bytes:
    """The string ClamAV's test program carries, built at run time (never stored in the repo)."""
    return b"CLA" + b"Message" + b"BoxA"


def leaves(data: bytes, name: str, tmpdir: Path, limits: ScanLimits | None = None) -> dict:
    """Every object unpacked, at any depth (``outer!member!...`` -> content); a container
    that holds nothing (a plain PE) is a leaf itself."""
    out: dict[str, bytes] = {}
    _walk(data, name, tmpdir, ExtractionBudget(limits or ScanLimits()), out)
    return out


def _walk(data: Buffer, path: str, tmpdir: Path, budget: ExtractionBudget, out: dict) -> None:
    name = path.rsplit("!", 1)[-1].rsplit("/", 1)[-1]
    members = iter_members(obj_for(data, name), budget, tmpdir)
    found = False
    for m in members or ():
        try:
            assert m.problem is None, m.problem
            found = True
            out[f"{path}!{m.name}"] = bytes(m.data)
            _walk(m.data, f"{path}!{m.name}", tmpdir, budget, out)
            if f"{path}!{m.name}" in out and any(k.startswith(f"{path}!{m.name}!") for k in out):
                del out[f"{path}!{m.name}"]
        finally:
            m.close()
    if not found and "!" not in path:
        out[path] = bytes(data)


def drain(data: bytes, name: str, tmpdir: Path, limits: ScanLimits) -> tuple[int, str]:
    """Open ``data`` and read every member; (members, how it ended) — never another error."""
    members = iter_members(obj_for(data, name), ExtractionBudget(limits), tmpdir)
    assert members is not None
    count = 0
    try:
        for m in members:
            count += 1
            m.close()
    except LimitExceeded as exc:
        return count, f"limit: {exc}"
    except ContainerError as exc:
        return count, f"damaged: {exc}"
    return count, "done"


# -- sniffing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "label"),
    [
        (b"From a@b.example  Thu Jul 31 13:51:21 2008\nFrom: a@b\nTo: c@d\n\nhi", "MAIL"),
        (b"Received: from x\nFrom: a@b\nSubject: hi\n\nbody", "MAIL"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "HTML"),
        (b'<a href="data:;base64,AA==">x</a>', "HTML"),
        (b"(This file must be converted with BinHex 4.0)\n:abc:", "BINHEX"),
        (b"\x78\x9f\x3e\x22\x00\x00", "TNEF"),
        (b"ITSF\x03\x00\x00\x00" + bytes(80), "CHM"),
        (b"SZDD\x88\xf0\x27\x33A\x00" + bytes(10), "SZDD"),
        (b"Subject: only one header line\n\nnot mail", "TEXT"),
        (b"Hello: world\nThis is: text\n", "TEXT"),
    ],
)
def test_sniff_new_formats(head: bytes, label: str) -> None:
    assert sniff(head) == label


# -- mail -------------------------------------------------------------------------------------
def _mail(parts: list[tuple[bytes, str]]) -> bytes:
    msg = email.mime.multipart.MIMEMultipart()
    msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", "test"
    msg.attach(email.mime.text.MIMEText("see attached"))
    for index, (data, encoding) in enumerate(parts):
        part = email.mime.application.MIMEApplication(data, _encoder=lambda p: None)
        part.add_header("Content-Disposition", "attachment", filename=f"f{index}.bin")
        if encoding == "base64":
            part.set_payload(base64.encodebytes(data).decode())
        elif encoding == "quoted-printable":
            import quopri

            part.set_payload(quopri.encodestring(data).decode())
        elif encoding == "x-uuencode":
            lines = [binascii.b2a_uu(data[i : i + 45]) for i in range(0, len(data), 45)]
            part.set_payload((b"begin 644 f.bin\n" + b"".join(lines) + b"`\nend\n").decode())
        part["Content-Transfer-Encoding"] = encoding
        msg.attach(part)
    return msg.as_bytes()


def test_mail_base64_qp_uuencode(tmp_path: Path) -> None:
    data = _mail([(PAYLOAD, "base64"), (EICAR, "quoted-printable"), (PAYLOAD, "x-uuencode")])
    assert sniff(data) == "MAIL"
    got = leaves(data, "m.eml", tmp_path)
    assert got["m.eml!part2-f0.bin"] == PAYLOAD
    assert got["m.eml!part3-f1.bin"] == EICAR
    assert got["m.eml!part4-f2.bin"] == PAYLOAD


def test_mbox_and_inline_uuencode(tmp_path: Path) -> None:
    uu = b"".join(binascii.b2a_uu(PAYLOAD[i : i + 45]) for i in range(0, len(PAYLOAD), 45))
    first = b"From a@example.org Thu Jan  1 00:00:00 2026\nFrom: a@example.org\nTo: b@x\n\nhi\n"
    second = (
        b"From c@example.org Thu Jan  1 00:00:01 2026\nFrom: c@example.org\nTo: d@x\n"
        b"Subject: uu\n\ntext before\nbegin 644 inline.exe\n" + uu + b"`\nend\nafter\n"
    )
    got = leaves(first + b"\n" + second, "box", tmp_path)
    assert got["box!message2/part1/inline.exe"] == PAYLOAD
    assert any(k.startswith("box!message1/") for k in got)


def test_mail_with_ten_thousand_parts(tmp_path: Path) -> None:
    boundary = "b0undary"
    parts = "".join(f"--{boundary}\nContent-Type: text/plain\n\npart {i}\n" for i in range(10_001))
    data = (
        f"From: a@example.org\nTo: b@example.org\nMIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{parts}--{boundary}--\n'
    ).encode()
    started = time.monotonic()
    count, how = drain(data, "many.eml", tmp_path, ScanLimits())
    assert how.startswith("limit: max-files"), how
    assert count <= 10_000
    assert time.monotonic() - started < 120


@pytest.mark.parametrize("name", ["clam.mail", "clam.exe.mbox.base64", "clam.exe.mbox.uu"])
def test_mail_clamav_files(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    assert any(_clam_body() in v for v in got.values()), list(got)


# -- PDF --------------------------------------------------------------------------------------
def _pdf(objects: dict[int, bytes], root: int = 1) -> bytes:
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets.get(num, 0)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, xref)
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n" % (dictionary, len(data)) + data + b"\nendstream"


def test_pdf_embedded_file_and_javascript(tmp_path: Path) -> None:
    packed = zlib.compress(PAYLOAD)
    data = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>",
            2: b"<< /Type /Pages /Kids [] /Count 0 >>",
            3: _stream(b"/Type /EmbeddedFile /Filter /FlateDecode", packed),
            4: b"<< /S /JavaScript /JS (app.alert\\('hi'\\)) >>",
            5: _stream(b"/Filter [/ASCIIHexDecode /FlateDecode]", packed.hex().encode() + b">"),
        }
    )
    assert sniff(data) == "PDF"
    got = leaves(data, "d.pdf", tmp_path)
    assert got["d.pdf!obj3-EmbeddedFile"] == PAYLOAD
    assert got["d.pdf!obj5"] == PAYLOAD
    assert b"app.alert" in got["d.pdf!javascript"]


def test_pdf_stream_bomb_and_reference_cycle(tmp_path: Path) -> None:
    c = zlib.compressobj(9)
    bomb = c.compress(bytes(64 * 1024 * 1024)) + c.flush()
    data = _pdf(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 3 0 R >>",
            3: b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R /Next 2 0 R >>",
            4: _stream(b"/Filter /FlateDecode", bomb),
        }
    )
    limits = ScanLimits(max_scan_size=8 * 1024 * 1024)
    _count, how = drain(data, "bomb.pdf", tmp_path, limits)
    assert how.startswith("limit: max-scan-size"), how


def test_pdf_clamav_file(tmp_path: Path) -> None:
    got = leaves(_clam("clam.pdf"), "clam.pdf", tmp_path)
    assert any(_clam_body() in v for v in got.values())


def test_pdf_garbage_is_damaged_not_a_crash(tmp_path: Path) -> None:
    _count, how = drain(b"%PDF-1.4\n" + os.urandom(5000), "x.pdf", tmp_path, ScanLimits())
    assert how in ("done",) or how.startswith("damaged"), how


# -- OLE2 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["clam.ole.doc", "clam.ppt"])
def test_ole2_clamav_files(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    hits = [k for k, v in got.items() if v.startswith(b"MZ") and _clam_body() in v]
    assert hits, list(got)


def _ole_patched(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


def test_ole2_directory_loop_and_huge_sector_count(tmp_path: Path) -> None:
    doc = _clam("clam.ole.doc")
    (first_dir_sector,) = struct.unpack_from("<I", doc, 0x30)
    (first_fat_sector,) = struct.unpack_from("<I", doc, 0x4C)
    fat_entry = (first_fat_sector + 1) * 512 + 4 * first_dir_sector
    looped = _ole_patched(doc, fat_entry, first_dir_sector)  # the directory chain loops
    huge = _ole_patched(doc, 0x2C, 0x7FFFFFFF)  # number of FAT sectors
    for data in (looped, huge):
        started = time.monotonic()
        _count, how = drain(data, "bad.doc", tmp_path, ScanLimits())
        assert how == "done" or how.startswith("damaged"), how
        assert time.monotonic() - started < 60


# -- RTF, TNEF, HTML, BinHex --------------------------------------------------------------------
def test_rtf_object_data(tmp_path: Path) -> None:
    rtf = b"{\\rtf1{\\object\\objemb{\\*\\objdata " + PAYLOAD.hex().encode() + b"}}}"
    assert sniff(rtf) == "RTF"
    got = leaves(rtf, "d.rtf", tmp_path)
    assert PAYLOAD in got.values()


def test_rtf_clamav_file(tmp_path: Path) -> None:
    got = leaves(_clam("clam.exe.rtf"), "clam.exe.rtf", tmp_path)
    assert any(v.startswith(b"MZ") and _clam_body() in v for v in got.values())


def test_tnef_clamav_file_and_truncated(tmp_path: Path) -> None:
    data = _clam("clam.tnef")
    got = leaves(data, "winmail.dat", tmp_path)
    assert any(_clam_body() in v for v in got.values())
    _count, how = drain(data[: len(data) // 2], "winmail.dat", tmp_path, ScanLimits())
    assert how == "done" or how.startswith("damaged"), how


def test_html_data_uri_and_script(tmp_path: Path) -> None:
    encoded = base64.b64encode(PAYLOAD).decode()
    html = (
        f'<!DOCTYPE html><html><body><a href="data:application/octet-stream;base64,{encoded}">'
        f"x</a><script>var s = 'hidden';</script></body></html>"
    ).encode()
    assert sniff(html) == "HTML"
    got = leaves(html, "p.html", tmp_path)
    assert PAYLOAD in got.values()
    assert any(v == b"var s = 'hidden';" for v in got.values())


def _binhex(name: bytes, data: bytes) -> bytes:
    header = bytes([len(name)]) + name + b"\x00" + b"TYPECREA" + b"\x00\x00"
    header += struct.pack(">II", len(data), 0) + b"\x00\x00"
    raw = header + data + b"\x00\x00" + b"\x00\x00"
    rle = raw.replace(b"\x90", b"\x90\x00")
    b64 = base64.b64encode(rle).rstrip(b"=")
    alphabet = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
    table = bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", alphabet
    )
    body = b64.translate(table)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"(This file must be converted with BinHex 4.0)\n:" + lines + b":\n"


def test_binhex(tmp_path: Path) -> None:
    payload = PAYLOAD + b"\x90" * 300  # runs of the RLE marker itself
    data = _binhex(b"a.exe", payload)
    assert sniff(data) == "BINHEX"
    assert leaves(data, "a.hqx", tmp_path) == {"a.hqx!a.exe": payload}


def test_binhex_run_length_bomb_stops_at_the_budget(tmp_path: Path) -> None:
    # Each 0x90 0xFF pair repeats the previous byte 254 more times.
    rle = b"\x01a\x00" + b"\x90\xff" * 200_000
    b64 = base64.b64encode(rle).rstrip(b"=")
    alphabet = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
    table = bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", alphabet
    )
    data = b"(This file must be converted with BinHex 4.0)\n:" + b64.translate(table) + b":"
    _count, how = drain(data, "bomb.hqx", tmp_path, ScanLimits(max_scan_size=10 * 1024 * 1024))
    assert how.startswith("limit: max-scan-size"), how


@pytest.mark.parametrize("name", ["clam.exe.html", "clam.exe.binhex"])
def test_text_clamav_files(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    assert any(_clam_body() in v for v in got.values())


# -- zip methods ------------------------------------------------------------------------------
def test_zip_deflate64(tmp_path: Path) -> None:
    import inflate64

    d = inflate64.Deflater()
    packed = d.deflate(PAYLOAD * 50) + d.flush()
    crc = zlib.crc32(PAYLOAD * 50)
    name = b"big.exe"
    local = local_header(name, 9, crc, len(packed), len(PAYLOAD) * 50) + packed
    central = central_header(name, 9, crc, len(packed), len(PAYLOAD) * 50, 0)
    data = local + central + end_record(1, len(central), len(local))
    assert leaves(data, "d64.zip", tmp_path) == {"d64.zip!big.exe": PAYLOAD * 50}


@needs_7zz
def test_zip_implode_through_7zz(tmp_path: Path) -> None:
    got = leaves(_clam("clam.impl.zip"), "clam.impl.zip", tmp_path)
    assert list(got) == ["clam.impl.zip!CLAM.EXE"]
    assert _clam_body() in got["clam.impl.zip!CLAM.EXE"]


# -- 7zz formats, installers, PE overlays -----------------------------------------------------
@needs_7zz
@pytest.mark.parametrize("name", ["clam.arj", "clam.chm", "clam.exe.szdd", "clam-nsis.exe"])
def test_7zz_formats(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    assert any(v.startswith(b"MZ") and _clam_body() in v for v in got.values()), list(got)
    assert not list(tmp_path.iterdir()), "7zz's private folder was not removed"


def test_7zz_missing_is_cannot_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack_7zz, "tool_path", lambda: None)
    arj = b"\x60\xea\x20\x00" + bytes(60)
    members = iter_members(obj_for(arj, "a.arj"), ExtractionBudget(ScanLimits()), tmp_path)
    assert members is not None
    got: list[Member] = list(members)
    assert len(got) == 1 and got[0].problem and got[0].problem.startswith("cannot open")


def test_7zz_that_never_ends_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tool (or an emulated packer) that never finishes: killed at max-scan-time."""
    fake = tmp_path / "fake7zz"
    fake.write_text("#!/bin/sh\nexec sleep 600\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(unpack_7zz, "tool_path", lambda: str(fake))
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    _count, how = drain(b"\x60\xea\x20\x00" + bytes(60), "a.arj", work, ScanLimits(max_scan_time=2))
    assert how.startswith("limit: max-scan-time"), how
    assert time.monotonic() - started < 60
    assert not list(work.iterdir())


def _pe_with_overlay(overlay: bytes) -> bytes:
    mz = bytearray(0x40)
    mz[:2] = b"MZ"
    struct.pack_into("<I", mz, 0x3C, 0x40)
    coff = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0, 0x102)
    section = b".text\x00\x00\x00" + struct.pack(
        "<IIIIIIHHI", 0x200, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020
    )
    head = bytes(mz) + coff + section
    return head + bytes(0x200 - len(head)) + b"\xc3" * 0x200 + overlay


def test_pe_overlay_archive_and_installshield(tmp_path: Path) -> None:
    from test_containers import make_zip

    sfx = _pe_with_overlay(make_zip({"inner.exe": PAYLOAD}))
    assert sniff(sfx) == "PE"
    assert leaves(sfx, "sfx.exe", tmp_path) == {"sfx.exe!overlay!inner.exe": PAYLOAD}
    records = b"a.exe\x00Disk1\\a.exe\x000.0.0.0\x00%d\x00" % len(PAYLOAD) + PAYLOAD
    records += b"b.txt\x00Disk1\\b.txt\x001.0\x005\x00hello"
    ishield = _pe_with_overlay(records)
    assert leaves(ishield, "setup.exe", tmp_path) == {
        "setup.exe!Disk1\\a.exe": PAYLOAD,
        "setup.exe!Disk1\\b.txt": b"hello",
    }


@pytest.mark.parametrize("name", ["clam.ea05.exe", "clam.ea06.exe"])
def test_autoit_script_and_installed_file(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    assert f"{name}!script.au3" in got
    assert any(v.startswith(b"MZ") and _clam_body() in v for v in got.values()), list(got)


def test_autoit_damaged_is_not_a_crash(tmp_path: Path) -> None:
    data = bytearray(_clam("clam.ea05.exe"))
    mark = bytes(data).index(b"AU3!EA05")
    data[mark + 40 : mark + 4000] = os.urandom(3960)
    _count, how = drain(bytes(data), "bad.exe", tmp_path, ScanLimits())
    assert how == "done" or how.startswith("damaged"), how


@pytest.mark.skipif(shutil.which("unshield") is None, reason="unshield not installed")
def test_installshield_cabinet_in_self_extractor(tmp_path: Path) -> None:
    got = leaves(_clam("clam_IScab_int.exe"), "setup.exe", tmp_path)
    hits = [k for k, v in got.items() if _clam_body() in v]
    assert hits == ["setup.exe!data1.cab/DefaultComponent/clam.exe"], hits
    assert not list(tmp_path.iterdir()), "unshield's private folder was not removed"


def test_installshield_cabinet_without_unshield(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _clam("clam_IScab_int.exe")
    monkeypatch.setattr(unpack_unshield.shutil, "which", lambda _name: None)
    members = iter_members(obj_for(data, "setup.exe"), ExtractionBudget(ScanLimits()), tmp_path)
    assert members is not None
    problems = [m.problem for m in members if m.problem]
    assert problems and problems[0].startswith("cannot open"), problems


def _ismsi_overlay(files: dict[bytes, bytes]) -> bytes:
    skey = b"\xec\xca\x79\xf8"
    out = b"NB10" + bytes(12) + b"C:\\setup.pdb\x00" + b"InstallShield\x00"
    out += struct.pack("<I", len(files)) + bytes(0x1C)
    for name, content in files.items():
        key = bytes(c ^ skey[i & 3] for i, c in enumerate(name))
        packed = zlib.compress(content)
        mixed = bytes(c ^ key[(i & 0x3FF) % len(key)] for i, c in enumerate(packed))
        swapped = bytes(((c << 4) | (c >> 4)) & 0xFF for c in mixed)
        entry = name.ljust(260, b"\x00") + struct.pack("<IIQ", 6, 0, len(packed)) + bytes(36)
        out += entry + swapped
    return out


def test_installshield_msi_setup(tmp_path: Path) -> None:
    big = PAYLOAD * 20  # more than one 1 KiB key block
    setup = _pe_with_overlay(_ismsi_overlay({b"a.msi": big, b"Setup.ini": b"[Startup]"}))
    assert leaves(setup, "setup.exe", tmp_path) == {
        "setup.exe!a.msi": big,
        "setup.exe!Setup.ini": b"[Startup]",
    }
    truncated = setup[:-5]  # the last stored file ends outside the file
    _count, how = drain(truncated, "setup.exe", tmp_path, ScanLimits())
    assert how.startswith("damaged"), how


@pytest.mark.parametrize("name", ["clam_ISmsi_int.exe", "clam_ISmsi_ext.exe"])
def test_installshield_msi_clamav_files(tmp_path: Path, name: str) -> None:
    got = leaves(_clam(name), name, tmp_path)
    assert any(v.startswith(b"MZ") and _clam_body() in v for v in got.values()), list(got)


def _upx_named(overlay: bytes = b"") -> bytes:
    return _pe_with_overlay(overlay).replace(b".text\x00\x00\x00", b"UPX0\x00\x00\x00\x00", 1)


def test_packer_emulation_that_never_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packed = _upx_named()
    assert unpack_packer.packer_of(packed) == "upx"
    monkeypatch.setattr(unpack_packer, "available", lambda: True)
    monkeypatch.setattr(unpack_packer, "child_command", lambda *_a: ["sleep", "600"])
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    members = iter_members(
        obj_for(packed, "p.exe"), ExtractionBudget(ScanLimits(max_scan_time=2)), work
    )
    got = [(m.name, m.problem) for m in members or ()]
    assert len(got) == 1 and got[0][0] == "unpacked-upx", got
    assert (got[0][1] or "").startswith("max-scan-time: upx emulation took longer than"), got
    assert time.monotonic() - started < 60
    assert not list(work.iterdir())


def test_packer_emulation_that_fails_scans_the_file_as_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(unpack_packer, "available", lambda: True)
    monkeypatch.setattr(unpack_packer, "child_command", lambda *_a: ["false"])
    members = iter_members(obj_for(_upx_named(), "p.exe"), ExtractionBudget(ScanLimits()), tmp_path)
    assert list(members or ()) == []


def test_upx_natively(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack_packer, "available", lambda: False)
    data = _clam("clam-upx.exe")
    got = leaves(data, "u.exe", tmp_path)
    assert list(got) == ["u.exe!unpacked-upx"]
    assert _clam_body() in got["u.exe!unpacked-upx"]
    start = 0x400  # the packed section's data: damage it in every way that matters
    for damaged in (
        data[: start + 100],  # truncated
        data[:start] + b"\xff" * (len(data) - start),  # all literal bits, then nothing
        data[:start] + b"\x00" * (len(data) - start),  # endless gamma codes
        data[:start] + os.urandom(len(data) - start),
    ):
        started = time.monotonic()
        _count, how = drain(damaged, "u.exe", tmp_path, ScanLimits())
        assert how == "done", how
        assert time.monotonic() - started < 30


def test_an_emulators_dump_is_not_emulated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(unpack_packer, "available", lambda: True)
    monkeypatch.setattr(unpack_packer, "child_command", lambda s, *_a: calls.append(s) or ["false"])
    for name in ("p.exe", "unpacked-upx"):
        list(
            iter_members(obj_for(_upx_named(), name), ExtractionBudget(ScanLimits()), tmp_path)
            or ()
        )
    assert len(calls) == 1


def test_plain_pe_has_no_members(tmp_path: Path) -> None:
    assert leaves(_pe_with_overlay(b""), "plain.exe", tmp_path) == {
        "plain.exe": _pe_with_overlay(b"")
    }


# -- Symbian SIS -------------------------------------------------------------------------------
def _sis(payload: bytes, *, compress: bool = True, pointer_shift: int = 0) -> bytes:
    stored = zlib.compress(payload) if compress else payload
    name = "!:\\sys\\bin\\app.exe".encode("utf-16-le")
    header = bytearray(0x64)
    struct.pack_into("<IIII", header, 0, 0x10000001, 0x10003A12, 0x10000419, 0)
    struct.pack_into("<HHH", header, 0x12, 1, 1, 0)
    struct.pack_into("<H", header, 0x24, 0x0001 | (0 if compress else 0x0008))
    struct.pack_into("<I", header, 0x34, 0x64)
    name_at = 0x64 + 48
    data_at = name_at + len(name)
    record = struct.pack(
        "<12I", 0, 0, 0, 0, 0, len(name), name_at, len(stored), data_at + pointer_shift,
        len(payload), 0, 0,
    )  # fmt: skip
    return bytes(header) + record + name + stored


def test_sis(tmp_path: Path) -> None:
    for compress in (True, False):
        data = _sis(PAYLOAD, compress=compress)
        assert sniff(data) == "SIS"
        assert leaves(data, "a.sis", tmp_path) == {"a.sis!app.exe": PAYLOAD}
    _count, how = drain(_sis(PAYLOAD, pointer_shift=1 << 20), "bad.sis", tmp_path, ScanLimits())
    assert how.startswith("damaged"), how
    got = leaves(_clam("clam.sis"), "clam.sis", tmp_path)
    assert any(_clam_body() in v for v in got.values())


# -- through the engine -----------------------------------------------------------------------
def test_engine_reports_format_and_container(tmp_path: Path, aegis_paths: object) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "letter").write_bytes(_mail([(EICAR, "base64")]))
    (tree / "page").write_bytes(
        b'<html><a href="data:;base64,' + base64.b64encode(EICAR) + b'">x</a></html>'
    )
    (tree / "doc").write_bytes(_binhex(b"e.com", EICAR))
    reports: list[FileReport] = []
    summary = Engine(aegis_paths).scan(  # type: ignore[arg-type]
        [tree], ScanOptions(), on_report=reports.append
    )
    assert summary.threats == 3 and summary.errors == 0 and summary.incomplete == 0
    found = {
        (Path(o.path.split("!")[0]).name, o.format, o.container)
        for r in reports
        for o in r.objects
        if o.verdict is Verdict.MALICIOUS
    }
    assert ("letter", "TEXT", "MAIL") in found
    assert ("page", "TEXT", "HTML") in found
    assert ("doc", "TEXT", "BINHEX") in found
