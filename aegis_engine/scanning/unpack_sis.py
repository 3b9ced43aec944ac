"""Symbian installation files of the EPOC era (SIS before Symbian 9, UID2 ``0x10003A12`` or
``0x1000006D``): the simple and multi-language file records, each file inflated (zlib, unless
the package says NOCOMPRESS) within the budget. Conditional and option records end the
walk (the files they hold are not reached: the target is then still scanned as is)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import Buffer, ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import MemberSink, inflate_into, member_label

_OPT_UNICODE = 0x0001
_OPT_NOCOMPRESS = 0x0008
_MAX_RECORDS = 10_000
_MAX_LANGUAGES = 256


def iter_sis(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    data = obj.data
    size = len(data)
    if size < 0x44:
        raise ContainerError("sis: truncated header")
    release6 = struct.unpack_from("<I", data, 4)[0] == 0x10003A12
    nlang, nfiles = struct.unpack_from("<HH", data, 0x12)
    (options,) = struct.unpack_from("<H", data, 0x24)
    (pos,) = struct.unpack_from("<I", data, 0x34)
    if not 1 <= nlang <= _MAX_LANGUAGES:
        raise ContainerError(f"sis: {nlang} languages")
    for index in range(min(nfiles, _MAX_RECORDS)):
        budget.check_time()
        if pos + 28 > size:
            raise ContainerError("sis: file record out of the file")
        rtype, _ftype, _details, _slen, _sptr, dlen, dptr = struct.unpack_from("<7I", data, pos)
        if rtype not in (0, 1):
            return  # options or a condition: sizes we do not follow
        n = 1 if rtype == 0 else nlang
        lengths_at = pos + 28
        pointers_at = lengths_at + 4 * n
        end = pointers_at + 4 * n + (4 * n + 8 if release6 else 0)
        if end > size:
            raise ContainerError("sis: file record out of the file")
        name = _name(data, dptr, dlen, bool(options & _OPT_UNICODE)) or f"file{index + 1}"
        for lang in range(n):
            (length,) = struct.unpack_from("<I", data, lengths_at + 4 * lang)
            (ptr,) = struct.unpack_from("<I", data, pointers_at + 4 * lang)
            if not length:
                continue
            if ptr + length > size:
                raise ContainerError(f"sis: {name} lies outside the file")
            budget.add_file()
            label = name if n == 1 else f"{name}/lang{lang}"
            stored = bytes(data[ptr : ptr + length])
            with MemberSink(label, budget, tmpdir, charge=True) as sink:
                if options & _OPT_NOCOMPRESS:
                    sink.write(stored)
                else:
                    inflate_into(stored, sink)
                yield sink.member()
        pos = end


def _name(data: Buffer, ptr: int, length: int, unicode: bool) -> str:
    if not 0 < length <= 1024 or ptr + length > len(data):
        return ""
    raw = bytes(data[ptr : ptr + length])
    text = raw.decode("utf-16-le", "replace") if unicode else raw.decode("latin-1")
    return member_label(text.replace("\\", "/").rsplit("/", 1)[-1])
