"""OLE2 compound files (Word/Excel/PowerPoint 97-2003, MSI, Outlook .msg, vbaProject.bin):
every stream (``olefile``), the payload of embedded ``Ole10Native`` packages, the OLE objects
PowerPoint keeps zlib-compressed in ``ExOleObjStg`` records, and the decompressed source of
VBA macros (``oletools.olevba``, loaded only when the file has a VBA project).

olefile validates the sector tables (loops and out-of-range sectors raise, a chain is never
longer than the file's sector count); a stream declaring more than max-file-size is reported
and not read; every byte produced is charged to the budget.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import MemberSink, inflate_into, member_from_bytes, member_label

_PPT_STREAM = "PowerPoint Document"
_PPT_EXOLEOBJSTG = 0x1011
_PPT_MAX_RECORDS = 1_000_000
_MAX_STREAMS = 100_000
"""olefile lists every directory entry up front; more than this is treated as hostile."""


_MSI_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._"


def msi_name(name: str) -> str:
    """An MSI stream name decoded (Windows Installer packs two name characters into one
    code point between U+3800 and U+4840; U+4840 marks a table): a label only."""
    out = []
    for ch in name:
        code = ord(ch)
        if 0x3800 <= code < 0x4800:
            code -= 0x3800
            out.append(_MSI_CHARS[code & 0x3F] + _MSI_CHARS[code >> 6 & 0x3F])
        elif 0x4800 <= code < 0x4840:
            out.append(_MSI_CHARS[code - 0x4800])
        elif code == 0x4840:
            out.append("!")
        else:
            out.append(ch)
    return "".join(out)


def iter_ole2(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    import olefile  # only when an OLE2 file is met

    data = bytes(obj.data)
    try:
        ole = olefile.OleFileIO(data, raise_defects=olefile.DEFECT_FATAL)
    except (OSError, ValueError, IndexError, struct.error, MemoryError) as exc:
        raise ContainerError(f"ole2: cannot open ({type(exc).__name__}: {exc})") from exc
    try:
        paths = ole.listdir(streams=True, storages=False)
        if len(paths) > _MAX_STREAMS:
            raise ContainerError(f"ole2: {len(paths)} streams (hostile directory?)")
        has_vba = False
        max_size = budget.limits.max_file_size
        for parts in paths:
            budget.check_time()
            stream = "/".join(parts)
            label = member_label("/".join(msi_name(p) for p in parts))
            if any(p.upper() in ("VBA", "_VBA_PROJECT_CUR") for p in parts[:-1]):
                has_vba = True
            budget.add_file()
            size = ole.get_size(stream)
            if max_size and size > max_size:
                yield Member(
                    label, b"", size, problem=f"max-file-size: stream declares {size} bytes"
                )
                continue
            budget.add_bytes(size)  # olefile reads a stream whole: charge before reading it
            content = ole.openstream(stream).read()
            yield Member(label, content, len(content))
            if parts[-1] == "\x01Ole10Native":
                yield from _ole_native(label, content, budget, tmpdir)
            elif parts[-1] == _PPT_STREAM:
                yield from _ppt_objects(label, content, budget, tmpdir)
        if has_vba:
            yield from _vba_sources(data, obj.name, budget, tmpdir)
    finally:
        ole.close()


def _ole_native(
    label: str, content: bytes, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    """The file an OLE ``Package`` object wraps (its stored name is a label only)."""
    from oletools.oleobj import OleNativeStream

    try:
        native = OleNativeStream(content)
    except Exception:  # a damaged header: the raw stream was scanned already
        return
    payload = native.data or b""
    if payload:
        budget.add_file()
        inner = member_label(native.filename or native.src_path or "native")
        yield member_from_bytes(f"{label}/{inner}", bytes(payload), budget, tmpdir)


def _ppt_objects(
    label: str, content: bytes, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    """Compressed ``ExOleObjStg`` records of a PowerPoint stream, inflated within the budget."""
    pos = 0
    count = 0
    end = len(content)
    while pos + 8 <= end and count < _PPT_MAX_RECORDS:
        count += 1
        ver_inst, rtype, rlen = struct.unpack_from("<HHI", content, pos)
        body = pos + 8
        if ver_inst & 0xF == 0xF:  # a container record: its children follow
            pos = body
            continue
        if rtype == _PPT_EXOLEOBJSTG and ver_inst >> 4 == 1 and rlen > 4:
            stored = content[body + 4 : body + rlen]
            budget.add_file()
            yield _inflate(f"{label}/ExOleObjStg@{pos}", stored, budget, tmpdir)
        pos = body + rlen


def _inflate(name: str, stored: bytes, budget: ExtractionBudget, tmpdir: Path) -> Member:
    with MemberSink(name, budget, tmpdir, charge=True) as sink:
        inflate_into(stored, sink)
        return sink.member()


def _vba_sources(
    data: bytes, name: str, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    """Decompressed VBA module source as text members ``vba/<module>``."""
    try:
        from oletools.olevba import VBA_Parser
    except ImportError:
        yield Member("<vba>", b"", 0, problem="cannot open: oletools is not installed")
        return
    try:
        parser = VBA_Parser(name or "document", data=data)
        macros = list(parser.extract_macros()) if parser.detect_vba_macros() else []
    except Exception as exc:
        yield Member("<vba>", b"", 0, problem=f"cannot open: vba: {type(exc).__name__}: {exc}")
        return
    for _fname, stream_path, vba_filename, code in macros:
        budget.check_time()
        budget.add_file()
        text = code.encode("utf-8", "surrogateescape") if isinstance(code, str) else bytes(code)
        yield member_from_bytes(
            member_label(f"vba/{stream_path}/{vba_filename}"), text, budget, tmpdir
        )
