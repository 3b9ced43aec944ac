"""sniff(): one label per type, from magic bytes (all inputs generated here)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis_engine.scanning.sniff import CONTAINER_TYPES, is_container, is_tar_header, sniff


def _pe(e_lfanew: int = 0x80, pe_sig: bytes = b"PE\x00\x00") -> bytes:
    head = bytearray(1024)
    head[0:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, e_lfanew)
    head[e_lfanew : e_lfanew + 4] = pe_sig
    return bytes(head)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"hello")
    return buf.getvalue()


def _tar(fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        info = tarfile.TarInfo("a.txt")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def _v7_tar() -> bytes:
    """An old-style tar header: no ustar magic, only a checksum that adds up."""
    block = bytearray(_tar()[:512])
    block[257:265] = bytes(8)  # drop "ustar\0" + version
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block) + b"hello".ljust(512, b"\x00") + bytes(1024)


def _cpio_bin(order: str) -> bytes:
    name = b"clam.exe\x00"
    fields = (0o070707, 1, 2, 0o100644, 0, 0, 1, 0, 0, 0, len(name), 0, 5)
    return struct.pack(order + "13H", *fields) + name + b"\x00" + b"hello"


SAMPLES: dict[str, list[bytes]] = {
    "PE": [_pe(), _pe(e_lfanew=0x40)],
    "MZ": [_pe(pe_sig=b"NE\x00\x00"), _pe(e_lfanew=0x10000), b"MZ"],
    "ELF": [b"\x7fELF\x02\x01\x01" + bytes(64)],
    "MACHO": [
        b"\xcf\xfa\xed\xfe" + bytes(28),
        b"\xfe\xed\xfa\xce" + bytes(28),
        b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + bytes(40),
    ],
    "ZIP": [_zip(), b"PK\x05\x06" + bytes(18)],
    "GZIP": [gzip.compress(b"hello")],
    "BZIP2": [bz2.compress(b"hello"), bz2.compress(b"")],
    "XZ": [lzma.compress(b"hello")],
    "LZMA": [lzma.compress(b"hello" * 100, format=lzma.FORMAT_ALONE)],
    "7Z": [b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24)],
    "TAR": [_tar(), _tar(tarfile.GNU_FORMAT), _tar(tarfile.PAX_FORMAT), _v7_tar()],
    "RAR": [b"Rar!\x1a\x07\x00" + bytes(20), b"Rar!\x1a\x07\x01\x00" + bytes(20)],
    "CAB": [b"MSCF\x00\x00\x00\x00" + bytes(40)],
    "CPIO": [b"070701" + b"0" * 104, b"070707" + b"0" * 70, _cpio_bin("<"), _cpio_bin(">")],
    "ISO": [bytes(0x8001) + b"CD001\x01" + bytes(2000)],
    "ARJ": [b"\x60\xea\x2c\x00" + bytes(60)],
    "AR": [b"!<arch>\ndebian-binary   "],
    "PDF": [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", b"\r\n" * 10 + b"%PDF-1.4\n"],
    "OLE2": [b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)],
    "RTF": [b"{\\rtf1\\ansi hello}"],
    "SCRIPT": [b"#!/bin/sh\necho hi\n", b"#!/usr/bin/env python3\n"],
    "TEXT": [b"hello world\n" * 50, "grüße aus köln\n".encode() * 10, b"caf\xe9 latin-1\r\n"],
    "DATA": [b"", bytes(512), os.urandom(4096), b"\x00\x01\x02\x03" * 100],
}


@pytest.mark.parametrize(
    ("label", "head"), [(label, head) for label, heads in SAMPLES.items() for head in heads]
)
def test_labels(label: str, head: bytes) -> None:
    assert sniff(head) == label


def test_java_class_is_not_macho() -> None:
    java = b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(100)  # major version 52
    assert sniff(java) != "MACHO"


def test_iso_needs_the_descriptor_in_the_head() -> None:
    iso = SAMPLES["ISO"][0]
    assert sniff(iso) == "ISO"
    assert sniff(iso[:8192]) != "ISO"  # only the first 8 KiB: the descriptor is not visible


def test_lzma_name_hint_allows_unusual_properties() -> None:
    data = lzma.compress(
        b"hello" * 100,
        format=lzma.FORMAT_ALONE,
        filters=[{"id": lzma.FILTER_LZMA1, "lc": 0, "lp": 0, "pb": 0, "dict_size": 1 << 16}],
    )
    assert data[0] != 0x5D
    assert sniff(data, "x.bin") != "LZMA"
    assert sniff(data, "x.lzma") == "LZMA"


def test_tar_header_helper() -> None:
    assert is_tar_header(_tar())
    assert is_tar_header(_v7_tar())
    assert not is_tar_header(bytes(512))
    assert not is_tar_header(b"a" * 511)
    block = bytearray(_v7_tar()[:512])
    block[0] ^= 1  # checksum no longer adds up
    assert not is_tar_header(bytes(block))


def test_container_types() -> None:
    for label in (
        "ZIP", "GZIP", "BZIP2", "XZ", "7Z", "TAR", "RAR", "CAB", "CPIO", "ISO", "ARJ",
        "PE", "PDF", "OLE2", "RTF", "MAIL", "HTML", "BINHEX", "TNEF", "CHM", "SZDD",
    ):  # fmt: skip
        assert is_container(label)
        assert label in CONTAINER_TYPES
    for label in ("MZ", "ELF", "TEXT", "DATA", "SCRIPT"):
        assert not is_container(label)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40000), st.text(max_size=20))
def test_sniff_never_raises(head: bytes, name: str) -> None:
    label = sniff(head, name)
    assert isinstance(label, str) and label
