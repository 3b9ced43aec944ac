"""Files Aegis itself writes outside its own folders, recognised in one place: the vault's
restore temp file and the ransomware shield's decoy documents.

A decoy is recognised by identity, not by name alone: its name has the decoy pattern AND its
bytes are exactly those Aegis writes for that name, so a file that merely borrows the name is
scanned like any other. A restore temp file lives for the length of one restore and is then
renamed to the restored name (which is what gets checked); the monitor recognises one in
flight by the vault's journal, not by its name.
"""

from __future__ import annotations

import os
import re

__all__ = [
    "DECOY_STEMS",
    "decoy_bytes",
    "decoy_name",
    "is_decoy",
    "restore_temp_name",
]

DECOY_STEMS = ("invoice", "passwords", "budget", "contract", "tax-return", "salary")
_DECOY = re.compile(r"^\.~(" + "|".join(DECOY_STEMS) + r")-[0-9a-f]{6}\.pdf$")


def restore_temp_name(item_id: str) -> str:
    """The temp name the vault writes a restored file under before renaming it."""
    return f".aegis-restore-{item_id}.tmp"


def decoy_name(stem: str, token: str) -> str:
    return f".~{stem}-{token}.pdf"


def decoy_bytes(stem: str) -> bytes:
    """A small, valid, one-page PDF with some text: looks like a real document."""
    title = stem.replace("-", " ").title()
    text = f"{title} - confidential. Account summary and references for the current year."
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    # Pad with more plausible text so the file is not tiny.
    out += (b"% " + text.encode() + b"\n") * 40
    return bytes(out)


def is_decoy(path: str, size: int | None = None) -> bool:
    """``path`` is one of the shield's decoys: decoy name and exactly a decoy's bytes."""
    m = _DECOY.match(os.path.basename(path))
    if m is None:
        return False
    expected = decoy_bytes(m.group(1))
    if size is not None and size != len(expected):
        return False
    try:
        with open(path, "rb") as fh:
            return fh.read(len(expected) + 1) == expected
    except OSError:
        return False
