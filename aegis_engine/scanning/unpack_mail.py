"""E-mail: RFC 5322/MIME messages and mbox files (stdlib ``email``), with base64,
quoted-printable and uuencoded parts, and uuencoded blocks inside plain-text bodies.

Every leaf part's decoded body is a member (``part<N>`` plus its declared file name as a
label); a message with more parts than max-files stops as ``incomplete``. The parser reads
the whole message (bounded by max-file-size) and nests no deeper than the message does;
``message/rfc822`` parts are members of their own and opened again by the scanner.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import re
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

from ..detectors.base import ScanObject
from .budget import ExtractionBudget, Member
from .unpack_io import MemberSink, member_from_bytes, member_label

_MBOX_SPLIT = re.compile(rb"(?:\r?\n){1,}(?=From [^\r\n]*\r?\n)")
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} ([^\r\n]*)\r?$", re.M)
_MAX_UU_BLOCKS = 1000


def iter_mail(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    data = bytes(obj.data)
    messages = [data]
    if data.startswith(b"From "):
        messages = [m for m in _MBOX_SPLIT.split(data) if m.strip()]
    for index, raw in enumerate(messages):
        prefix = f"message{index + 1}/" if len(messages) > 1 else ""
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        yield from _parts(msg, prefix, budget, tmpdir)


def _parts(msg: Message, prefix: str, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    number = 0
    for part in msg.walk():
        budget.check_time()
        if part.is_multipart():
            continue
        number += 1
        budget.add_file()
        filename = part.get_filename()
        label = f"{prefix}part{number}"
        if filename:
            label += f"-{member_label(str(filename))}"
        body = part.get_payload(decode=True)
        if not isinstance(body, bytes):
            continue
        yield member_from_bytes(label, body, budget, tmpdir)
        if part.get_content_maintype() == "text" and b"begin " in body:
            yield from _uu_blocks(body, label, budget, tmpdir)


def _uu_blocks(text: bytes, label: str, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    """Uuencoded files written inline into a text body (``begin 644 name`` ... ``end``)."""
    for count, match in enumerate(_UU_BEGIN.finditer(text)):
        if count >= _MAX_UU_BLOCKS:
            break
        budget.check_time()
        budget.add_file()
        name = member_label(match.group(1).decode("latin-1").strip())
        with MemberSink(f"{label}/{name}", budget, tmpdir, charge=True) as sink:
            for line in _lines_after(text, match.end()):
                stripped = line.strip()
                if stripped == b"end":
                    break
                if stripped in (b"`", b""):
                    continue
                try:
                    decoded = binascii.a2b_uu(stripped)
                except binascii.Error:
                    break
                if not sink.write(decoded):
                    break
            yield sink.member()


def _lines_after(text: bytes, pos: int) -> Iterator[bytes]:
    """The lines of ``text`` after the one that holds ``pos`` (without copying the rest)."""
    pos = text.find(b"\n", pos)
    while pos >= 0:
        nxt = text.find(b"\n", pos + 1)
        yield text[pos + 1 : nxt if nxt >= 0 else len(text)]
        pos = nxt
