"""Cheap content tests for the ransomware shield: entropy, known file types, known extensions.

Encrypted data looks random: about 8 bits of entropy per byte and no recognisable header.
Compressed formats look random too, but start with a known signature (zip, gzip, PNG, JPEG,
...), so "high entropy and no known signature" is what marks a file as encrypted.
"""

from __future__ import annotations

import math
import os
from collections import Counter

__all__ = [
    "encrypted_threshold",
    "entropy",
    "is_known_extension",
    "known_type",
    "looks_encrypted",
]

# (offset, signature, type). Checked against the first bytes of a file.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"PK\x03\x04", "zip"),
    (0, b"PK\x05\x06", "zip"),
    (0, b"PK\x07\x08", "zip"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"),
    (0, b"\xfd7zXZ\x00", "xz"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z"),
    (0, b"Rar!\x1a\x07", "rar"),
    (0, b"\x04\x22\x4d\x18", "lz4"),
    (0, b"LZIP", "lzip"),
    (0, b"\x5d\x00\x00", "lzma"),
    (0, b"MSCF", "cab"),
    (0, b"!<arch>", "ar"),
    (257, b"ustar", "tar"),
    (0, b"\x89PNG", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"GIF8", "gif"),
    (0, b"RIFF", "riff"),
    (4, b"ftyp", "iso-media"),
    (0, b"ID3", "mp3"),
    (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"),
    (0, b"\xff\xf2", "mp3"),
    (0, b"OggS", "ogg"),
    (0, b"fLaC", "flac"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"8BPS", "psd"),
    (0, b"\x00\x00\x00\x0cjP  ", "jpeg2000"),
    (0, b"wOFF", "woff"),
    (0, b"wOF2", "woff2"),
    (0, b"OTTO", "otf"),
    (0, b"\x00\x01\x00\x00\x00", "ttf"),
    (0, b"%PDF", "pdf"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole"),
    (0, b"{\\rtf", "rtf"),
    (0, b"\x7fELF", "elf"),
    (0, b"MZ", "pe"),
    (0, b"\xca\xfe\xba\xbe", "mach-o/java"),
    (0, b"\xcf\xfa\xed\xfe", "mach-o"),
    (0, b"\xce\xfa\xed\xfe", "mach-o"),
    (0, b"\x00asm", "wasm"),
    (0, b"PACK", "git-pack"),
    (0, b"DIRC", "git-index"),
    (0, b"SQLite format 3\x00", "sqlite"),
    (0, b"\x03\xd9\xa2\x9a", "keepass"),
    (0, b"\x93NUMPY", "npy"),
    (0, b"\x00\x00\x01\xba", "mpeg"),
    (0, b"\x00\x00\x01\xb3", "mpeg"),
    (0, b"FWS", "swf"),
    (0, b"CWS", "swf"),
    (0, b"koly", "dmg"),
    (0, b"\xed\xab\xee\xdb", "rpm"),
    (0, b"hsqs", "squashfs"),
    (0, b"OpenSSH", "openssh"),
)

_ZLIB_SECOND = frozenset({0x01, 0x5E, 0x9C, 0xDA})

# Extensions that are ordinary for user files; a rename to anything else is suspicious.
_EXTENSION_TEXT = """
    txt md rst csv tsv log json xml yaml yml toml ini cfg conf html htm css js ts py rb pl sh
    c h cc cpp hpp java go rs swift kt php sql tex bib srt vtt ipynb
    doc docx docm dot dotx xls xlsx xlsm xlt ppt pptx pps odt ods odp odg rtf pdf epub mobi
    pages numbers key wpd wps one vsd vsdx msg eml mbox ics vcf
    jpg jpeg jpe png gif bmp tif tiff webp heic heif avif raw cr2 cr3 nef arw dng orf rw2 psd
    xcf svg ico eps ai indd
    mp3 m4a aac flac wav ogg oga opus wma mid midi aiff
    mp4 m4v mov avi mkv webm wmv flv mpg mpeg 3gp ts
    zip gz tgz bz2 tbz xz txz zst 7z rar tar lz lz4 lzma cab iso img dmg deb rpm apk jar whl
    exe dll msi so dylib bin dat db sqlite sqlite3 kdbx gpg pgp asc sig pem crt key
    bak old orig tmp temp swp swo part crdownload download partial lock
    ttf otf woff woff2 pyc pyo o a lib class
"""
_KNOWN_EXTENSIONS = frozenset(_EXTENSION_TEXT.split())


def known_type(head: bytes) -> str | None:
    """The type a file's first bytes announce, or None."""
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if len(head) >= 2 and head[0] == 0x78 and head[1] in _ZLIB_SECOND:
        return "zlib"
    return None


def entropy(data: bytes) -> float:
    """Shannon entropy in bits per byte (0 for empty data)."""
    n = len(data)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def encrypted_threshold(n: int, margin: float) -> float:
    """Entropy above which ``n`` bytes count as random: what uniform random bytes of that
    length show on average (8 minus the Miller-Madow bias, 255 / (2 n ln 2)), less ``margin``."""
    return 8.0 - 255.0 / (2.0 * n * math.log(2)) - margin


def looks_encrypted(head: bytes, *, margin: float, min_sample: int) -> bool:
    """High entropy and no known signature."""
    if len(head) < min_sample or known_type(head) is not None:
        return False
    return entropy(head) >= encrypted_threshold(len(head), margin)


def is_known_extension(name: str) -> bool:
    """True for names with an ordinary extension (or none, or an editor backup ``~``)."""
    base = os.path.basename(name)
    if base.endswith("~") or base.endswith("#"):
        return True
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem.strip("."):
        return True  # no extension (or a dotfile): nothing to judge
    return ext.lower() in _KNOWN_EXTENSIONS
