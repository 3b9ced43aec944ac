"""PDF: every stream object decoded (embedded files, scripts, content, fonts) and the
document's JavaScript strings, through ``pypdf``'s object parser.

Objects are visited by number from the cross-reference table, never by following
references, so a reference cycle costs nothing. ``FlateDecode`` is inflated here in bounded
chunks charged to the budget (a stream bomb stops at max-scan-size); ``ASCIIHexDecode`` and
``ASCII85Decode`` (whose output is smaller than their input) use pypdf's decoders; a stream
with any other filter is scanned as stored. Each member is named ``obj<N>`` plus its
``/Type`` (``obj15-EmbeddedFile``).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..detectors.base import ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import CHUNK, MemberSink, inflate_into

_MAX_OBJECTS = 1_000_000
_MAX_FILTERS = 8


def iter_pdf(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    # pypdf reports damage through logging: a damaged PDF must not print to a user's terminal.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    from pypdf import PdfReader
    from pypdf.generic import IndirectObject, StreamObject

    try:
        reader = PdfReader(io.BytesIO(bytes(obj.data)), strict=False)
        numbers = sorted(
            {(num, gen) for gen, table in reader.xref.items() for num in table}
            | {(num, 0) for num in reader.xref_objStm}
        )
    except Exception as exc:
        raise ContainerError(f"pdf: cannot open ({type(exc).__name__}: {exc})") from exc
    if len(numbers) > _MAX_OBJECTS:
        raise ContainerError(f"pdf: {len(numbers)} objects (hostile cross-reference table?)")
    scripts: list[bytes] = []
    for num, gen in numbers:
        budget.check_time()
        try:
            item = reader.get_object(IndirectObject(num, gen, reader))
        except Exception:
            continue  # a damaged object: the others are still read
        if isinstance(item, dict):
            script = item.get("/JS")
            if isinstance(script, str | bytes):
                text = script.encode("utf-8", "replace") if isinstance(script, str) else script
                scripts.append(text)
        if not isinstance(item, StreamObject):
            continue
        budget.add_file()
        kind = str(item.get("/Type", "") or item.get("/Subtype", "")).lstrip("/")
        name = f"obj{num}" + (f"-{kind[:40]}" if kind.isprintable() and kind else "")
        yield _decode_stream(name, item, budget, tmpdir)
    if scripts:
        budget.add_file()
        joined = b"\n".join(scripts)
        with MemberSink("javascript", budget, tmpdir, charge=True) as sink:
            sink.write(joined)
            yield sink.member()


def _filters(stream: Any) -> list[str]:
    raw = stream.get("/Filter")
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [str(f) for f in items][: _MAX_FILTERS + 1]


def _decode_stream(name: str, stream: Any, budget: ExtractionBudget, tmpdir: Path) -> Member:
    from pypdf.filters import ASCII85Decode, ASCIIHexDecode

    data: bytes = bytes(stream._data or b"")  # the stored (encoded) bytes
    filters = _filters(stream)
    with MemberSink(name, budget, tmpdir, charge=True) as sink:
        for position, name_ in enumerate(filters):
            if name_ in ("/AHx", "/ASCIIHexDecode"):
                data = _try(lambda d=data: ASCIIHexDecode.decode(d), data)
            elif name_ in ("/A85", "/ASCII85Decode"):
                data = _try(lambda d=data: ASCII85Decode.decode(d), data)
            elif name_ in ("/Fl", "/FlateDecode") and position == len(filters) - 1:
                _inflate(data, sink)
                return sink.member()
            elif name_ in ("/Fl", "/FlateDecode"):
                inner = MemberSink(name, budget, tmpdir, charge=True, memory_limit=1 << 62)
                with inner:
                    _inflate(data, inner)
                    member = inner.member()
                    data = bytes(member.data)
                    member.close()
            else:
                break  # LZW, images, crypt...: scanned as they are now
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            if not sink.write(view[start : start + CHUNK]):
                break
        return sink.member()


def _try(decode: Any, data: bytes) -> bytes:
    try:
        out = decode()
    except Exception:
        return data
    return out if isinstance(out, bytes) else data


def _inflate(data: bytes, sink: MemberSink) -> None:
    """zlib, or raw deflate when the zlib header is missing."""
    inflate_into(data, sink, 15 if data[:1] and (data[0] & 0x0F) == 8 else -15)
