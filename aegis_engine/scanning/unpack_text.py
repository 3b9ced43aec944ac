"""Text formats that carry binary payloads: HTML (base64 ``data:`` URIs and ``<script>``
blocks) and BinHex 4.0 (Python 3.11 dropped ``binhex``: the small decoder is here).

Both read the text in place with regular expressions that cannot backtrack badly (one
character class per match), decode at most max-files payloads, and charge every decoded
byte to the budget.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import MemberSink, member_from_bytes, member_label

_DATA_URI = re.compile(rb"data:[\w.+/-]{0,100}(?:;[\w.+-]{1,40}=[\w.+-]{1,100}){0,4};base64,", re.I)
_B64_RUN = re.compile(rb"[A-Za-z0-9+/=\s%]*")
_SCRIPT = re.compile(rb"<script\b[^>]{0,2000}>", re.I)
_SCRIPT_END = re.compile(rb"</script\s*>", re.I)


def iter_html(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    text = bytes(obj.data)
    for index, match in enumerate(_DATA_URI.finditer(text)):
        budget.check_time()
        run = _B64_RUN.match(text, match.end())
        assert run is not None
        encoded = re.sub(rb"\s|%0[aAdD]", b"", run.group())
        budget.add_file()
        try:
            decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            decoded = b""
        yield member_from_bytes(f"data-uri{index + 1}@{match.start()}", decoded, budget, tmpdir)
    for index, match in enumerate(_SCRIPT.finditer(text)):
        budget.check_time()
        end = _SCRIPT_END.search(text, match.end())
        body = text[match.end() : end.start() if end else len(text)]
        if not body.strip():
            continue
        budget.add_file()
        yield member_from_bytes(f"script{index + 1}@{match.start()}", body, budget, tmpdir)


_BINHEX_ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_BINHEX_TO_B64 = bytes.maketrans(
    _BINHEX_ALPHABET, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)
_BINHEX_NOISE = bytes(c for c in range(256) if c not in _BINHEX_ALPHABET)
_RUNCHAR = 0x90


def iter_binhex(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    """BinHex 4.0: 6-bit text -> run-length encoding -> header, data fork, resource fork."""
    text = bytes(obj.data)
    start = text.find(b":", text.find(b"BinHex"))
    if start < 0:
        raise ContainerError("binhex: no start marker")
    stop = text.find(b":", start + 1)
    body = text[start + 1 : stop if stop > 0 else len(text)].translate(None, _BINHEX_NOISE)
    body = body[: len(body) // 4 * 4 + (len(body) % 4 if len(body) % 4 > 1 else 0)]
    try:
        packed = base64.b64decode(body.translate(_BINHEX_TO_B64) + b"=" * (-len(body) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ContainerError(f"binhex: bad encoding ({exc})") from exc
    data = _unrle(packed, budget)
    if len(data) < 1 + 1 + 4 + 4 + 2 + 4 + 4 + 2:
        raise ContainerError("binhex: truncated header")
    nlen = data[0]
    name = member_label(bytes(data[1 : 1 + nlen]))
    pos = 1 + nlen + 1 + 4 + 4 + 2
    if pos + 10 > len(data):
        raise ContainerError("binhex: truncated header")
    dlen, rlen = struct.unpack_from(">II", data, pos)
    pos += 8 + 2
    for fork, length in (("data", dlen), ("rsrc", rlen)):
        if not length:
            pos += 2
            continue
        piece = bytes(data[pos : pos + length])
        budget.add_file()
        label = name if fork == "data" else f"{name}/rsrc"
        with MemberSink(label, budget, tmpdir, charge=False) as sink:
            sink.write(piece)  # charged already while un-run-length-encoding
            yield sink.member()
        pos += length + 2


def _unrle(packed: bytes, budget: ExtractionBudget) -> bytearray:
    """BinHex run-length decoding (0x90 n repeats the previous byte n-1 more times; 0x90 0
    is a literal 0x90)."""
    out = bytearray()
    charged = 0
    i = 0
    n = len(packed)
    while i < n:
        mark = packed.find(b"\x90", i)
        if mark < 0:
            out += packed[i:]
            break
        out += packed[i:mark]
        count = packed[mark + 1] if mark + 1 < n else 0
        if count == 0:
            out.append(_RUNCHAR)
        elif out:
            out += bytes([out[-1]]) * (count - 1)
        i = mark + 2
        if len(out) - charged >= 65536:
            budget.add_bytes(len(out) - charged)
            charged = len(out)
    budget.add_bytes(len(out) - charged)
    return out
