"""Type sniffing from magic bytes: one short label per object (``PE``, ``ZIP``, ``TEXT``, ...).

``sniff`` looks only at the head of the content (the scanner passes the first 8 KiB, or up to
36 KiB so that the ISO 9660 descriptor at offset 0x8001 is visible). It never raises.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

CONTAINER_TYPES: frozenset[str] = frozenset(
    {
        "ZIP", "GZIP", "BZIP2", "XZ", "LZMA", "7Z", "TAR", "RAR", "CAB", "CPIO", "ISO", "ARJ",
        "AR", "CHM", "SZDD", "OLE2", "RTF", "PDF", "MAIL", "TNEF", "BINHEX", "HTML", "PE", "SIS",
    }
)  # fmt: skip
"""Labels of formats that hold members. ``PE`` is opened for what installers and
self-extractors keep after the last section (the overlay); most PE files hold nothing."""

_ISO_OFFSET = 0x8001
_TEXT_SAMPLE = 4096
# Control bytes that still occur in ordinary text: BS, TAB, LF, VT, FF, CR, ESC.
_TEXT_CONTROLS = frozenset(b"\b\t\n\v\f\r\x1b")
# Every byte that is not a stray control byte: deleting these leaves only the stray ones.
_NOT_STRAY_CONTROL = bytes(
    c for c in range(256) if not ((c < 0x20 and c not in _TEXT_CONTROLS) or c == 0x7F)
)
_MACHO_MAGICS = (
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
)


def is_container(filetype: str) -> bool:
    """True when ``filetype`` (a :func:`sniff` label) is a format that holds members."""
    return filetype in CONTAINER_TYPES


def sniff(head: bytes, name: str = "") -> str:
    """Return a type label for content starting with ``head``.

    ``name`` is only a hint (it lets a ``.lzma`` file with unusual properties be recognised);
    the label is decided by the bytes.
    """
    head = bytes(head)
    if not head:
        return "DATA"
    label = _sniff_magic(head, name)
    if label:
        return label
    if _is_text(head):
        return "TEXT"
    return "DATA"


def _sniff_magic(head: bytes, name: str) -> str:
    if head.startswith(b"MZ"):
        return _sniff_mz(head)
    for magic, label in _MAGIC:
        if head.startswith(magic) if isinstance(magic, (bytes, tuple)) else magic(head):
            return label
    if _is_lzma_alone(head, name):
        return "LZMA"
    if head.startswith(b"#!"):
        return "SCRIPT"
    return _sniff_text_container(head)


_MAIL_HEADERS = (
    b"from:", b"to:", b"subject:", b"date:", b"received:", b"message-id:", b"mime-version:",
    b"content-type:", b"return-path:", b"delivered-to:", b"reply-to:", b"x-mailer:",
    b"content-transfer-encoding:",
)  # fmt: skip
_HTML_STARTS = (
    b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<a ", b"<a\n", b"<iframe",
    b"<meta", b"<div", b"<p>", b"<table", b"<img", b"<form", b"<title", b"<style", b"<!--",
)  # fmt: skip
_BINHEX_MARK = b"(This file must be converted with BinHex"


def _sniff_text_container(head: bytes) -> str:
    """Mail, HTML and BinHex: text formats recognised by how they start (first 1 KiB). Most
    text starts with neither ``<``, ``(`` nor a header line, and costs one look at a byte."""
    start = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    first = start[:1]
    if first == b"<":
        return "HTML" if start[:16].lower().startswith(_HTML_STARTS) else ""
    if first == b"(":
        return "BINHEX" if start.startswith(_BINHEX_MARK) else ""
    if not first.isalpha():
        return ""
    line_end = start.find(b"\n", 0, 200)
    line = start[: line_end if line_end >= 0 else 200]
    if not (line.startswith(b"From ") or b":" in line):
        return ""
    if b"\x00" in start[:256]:
        return ""
    return "MAIL" if _is_mail(start.lower()) else ""


def _is_mail(lower: bytes) -> bool:
    """An RFC 5322 message or an mbox: header lines first, at least two well-known ones."""
    lines = lower.split(b"\n", 24)[:24]
    first = lines[0]
    if (first.startswith(b"from ") and b"@" in first) or first.startswith(b"from - "):
        lines = lines[1:]  # mbox separator line
    known = 0
    for line in lines:
        if not line.strip(b"\r"):
            break
        if line[:1] in (b" ", b"\t"):
            continue  # folded header
        name, colon, _ = line.partition(b":")
        if not colon or not name or any(c <= 32 or c > 126 for c in name):
            return False
        if line.startswith(_MAIL_HEADERS):
            known += 1
    return known >= 2


def _sniff_mz(head: bytes) -> str:
    if len(head) >= 0x40:
        (e_lfanew,) = struct.unpack_from("<I", head, 0x3C)
        if 2 <= e_lfanew <= len(head) - 4 and head[e_lfanew : e_lfanew + 4] == b"PE\x00\x00":
            return "PE"
    return "MZ"


def _is_macho_fat(head: bytes) -> bool:
    # 0xCAFEBABE is also the Java class magic; a fat header has a small architecture count,
    # a class file has its major version (>= 45) there.
    if len(head) < 8 or head[:4] not in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):
        return False
    nfat = int(struct.unpack_from(">I", head, 4)[0])
    return 0 < nfat < 20


def _is_sis(head: bytes) -> bool:
    """An EPOC-era Symbian installer: UID2 0x10003A12 (or 0x1000006D), UID3 0x10000419."""
    return len(head) >= 12 and head[4:12] in (
        b"\x12\x3a\x00\x10\x19\x04\x00\x10",
        b"\x6d\x00\x00\x10\x19\x04\x00\x10",
    )


def _is_bzip2(head: bytes) -> bool:
    return (
        len(head) >= 10
        and head.startswith(b"BZh")
        and 0x31 <= head[3] <= 0x39
        and head[4:10] in (b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90")
    )


def _is_cpio(head: bytes) -> bool:
    if head[:6] in (b"070701", b"070702", b"070707"):
        return True
    if len(head) < 26 or head[:2] not in (b"\xc7\x71", b"\x71\xc7"):
        return False
    # Old binary header: 13 16-bit fields in the writer's byte order; check the name is sane.
    order = "<" if head[:2] == b"\xc7\x71" else ">"
    namesize = int(struct.unpack_from(order + "H", head, 20)[0])
    if not 1 <= namesize <= 4096:
        return False
    end = 26 + namesize
    return len(head) < end or head[end - 1] == 0


def _is_arj(head: bytes) -> bool:
    if len(head) < 4 or not head.startswith(b"\x60\xea"):
        return False
    size = int(struct.unpack_from("<H", head, 2)[0])
    return 0 < size <= 2600


def is_tar_header(head: bytes) -> bool:
    """True when ``head`` starts with a tar header block (ustar magic, or a valid checksum)."""
    if len(head) < 512:
        return False
    if head[257:262] == b"ustar":
        return True
    return _tar_checksum_ok(head[:512])


def _tar_checksum_ok(block: bytes) -> bool:
    """An old-style (v7) tar header: a name, octal size, and a header checksum that adds up."""
    if block[0] == 0:
        return False
    field = block[148:156].replace(b"\x00", b" ").strip()
    if not field or any(c not in b"01234567" for c in field):
        return False
    stored = int(field, 8)
    size_field = block[124:136].replace(b"\x00", b" ").strip()
    if size_field and any(c not in b"01234567" for c in size_field):
        return False
    unsigned = sum(block[:148]) + 8 * 0x20 + sum(block[156:])
    signed = unsigned - sum(256 for c in block[:148] + block[156:] if c > 127)
    return stored in (unsigned, signed)


def _is_lzma_alone(head: bytes, name: str) -> bool:
    """The legacy ``.lzma`` header: properties, dictionary size, uncompressed size."""
    if len(head) < 13:
        return False
    props = head[0]
    if props >= 9 * 5 * 5:
        return False
    if props != 0x5D and not name.lower().endswith(".lzma"):
        return False
    dict_size, usize = struct.unpack_from("<IQ", head, 1)
    plausible_dict = any(dict_size in (1 << n, (1 << n) | (1 << (n - 1))) for n in range(12, 31))
    return plausible_dict and (usize == 0xFFFFFFFFFFFFFFFF or usize < 1 << 40)


def _is_text(head: bytes) -> bool:
    sample = head[:_TEXT_SAMPLE]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with a byte-order mark
        return True
    if b"\x00" in sample:
        return False
    controls = len(sample.translate(None, _NOT_STRAY_CONTROL))  # counted in C: hot path
    # Compressed or random data has about 12% such bytes (and NULs); text has almost none.
    # Bytes >= 0x80 are allowed: UTF-8 and legacy 8-bit encodings.
    return controls * 20 <= len(sample)


_MAGIC: tuple[tuple[bytes | tuple[bytes, ...] | Callable[[bytes], bool], str], ...] = (
    (b"\x7fELF", "ELF"),
    (lambda head: head[:4] in _MACHO_MAGICS or _is_macho_fat(head), "MACHO"),
    ((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08PK\x03\x04"), "ZIP"),
    (b"\x1f\x8b\x08", "GZIP"),
    (_is_bzip2, "BZIP2"),
    (b"\xfd7zXZ\x00", "XZ"),
    (b"7z\xbc\xaf\x27\x1c", "7Z"),
    ((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00"), "RAR"),
    (b"MSCF\x00\x00\x00\x00", "CAB"),
    (_is_cpio, "CPIO"),
    (b"!<arch>\n", "AR"),
    (_is_arj, "ARJ"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE2"),
    (b"ITSF\x03\x00\x00\x00", "CHM"),
    (b"SZDD\x88\xf0\x27\x33", "SZDD"),
    (b"\x78\x9f\x3e\x22", "TNEF"),
    (_is_sis, "SIS"),
    (b"{\\rtf", "RTF"),
    (is_tar_header, "TAR"),
    (lambda head: head[_ISO_OFFSET : _ISO_OFFSET + 5] == b"CD001", "ISO"),
    (lambda head: b"%PDF-" in head[:1024], "PDF"),
)
"""What :func:`_sniff_magic` tries after ``MZ``, in order: a prefix (or prefixes) the content
starts with, or a test of the head; the first that matches gives the label."""
