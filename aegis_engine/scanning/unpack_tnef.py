"""TNEF (``winmail.dat``, Outlook's rich-text attachments) through ``tnefparse``: each
attachment is a member named by its stored name (a label only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import ScanObject
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .unpack_io import member_from_bytes, member_label


def iter_tnef(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    try:
        import tnefparse
    except ImportError:
        yield Member("<tnef>", b"", 0, problem="cannot open: tnefparse is not installed")
        return
    try:
        tnef = tnefparse.TNEF(bytes(obj.data))
    except Exception as exc:  # tnefparse raises plain ValueError/struct.error on damage
        raise ContainerError(f"tnef: cannot open ({type(exc).__name__}: {exc})") from exc
    for index, attachment in enumerate(tnef.attachments):
        budget.check_time()
        budget.add_file()
        try:
            stored = attachment.long_filename() or attachment.name
        except Exception:
            stored = None
        name = member_label(stored) if stored else f"attachment{index + 1}"
        yield member_from_bytes(name, bytes(attachment.data or b""), budget, tmpdir)
    body = getattr(tnef, "htmlbody", None) or getattr(tnef, "body", None)
    if isinstance(body, bytes | str) and body:
        budget.add_file()
        raw = body.encode("utf-8", "replace") if isinstance(body, str) else body
        yield member_from_bytes("body", raw, budget, tmpdir)
