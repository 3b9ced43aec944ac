"""RTF: embedded objects (``\\object``/``\\objdata``, and hex data hidden anywhere) through
``oletools.rtfobj``, the field's standard parser for malicious RTF. Each object's raw data is
a member; an OLE ``Package`` also gives the file it wraps, and an OLE2 object is opened again
by the scanner. rtfobj reads the whole document in memory (bounded by max-file-size) and
decodes only hex, whose output is half its input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import member_from_bytes, member_label

_MAX_OBJECTS = 10_000


def iter_rtf(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    try:
        from oletools.rtfobj import RtfObjParser
    except ImportError:
        yield Member("<rtf objects>", b"", 0, problem="cannot open: oletools is not installed")
        return
    parser = RtfObjParser(bytes(obj.data))
    try:
        parser.parse()
    except RecursionError as exc:
        raise ContainerError("rtf: nested too deeply") from exc
    for index, rtf_obj in enumerate(parser.objects[:_MAX_OBJECTS]):
        budget.check_time()
        budget.add_file()
        label = f"object{index + 1}@{rtf_obj.start}"
        if rtf_obj.is_package and rtf_obj.olepkgdata:
            name = member_label(rtf_obj.filename or "package")
            yield member_from_bytes(f"{label}/{name}", bytes(rtf_obj.olepkgdata), budget, tmpdir)
        elif rtf_obj.is_ole and rtf_obj.oledata:
            yield member_from_bytes(f"{label}/oledata", bytes(rtf_obj.oledata), budget, tmpdir)
        else:
            yield member_from_bytes(label, bytes(rtf_obj.rawdata or b""), budget, tmpdir)
    if len(parser.objects) > _MAX_OBJECTS:
        raise ContainerError(f"rtf: more than {_MAX_OBJECTS} embedded objects")
