"""The EICAR anti-malware test file, detected per its specification (eicar.org)."""

from __future__ import annotations

from ..results import Finding, FindingKind, Severity
from .base import ScanObject

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
_MAX_SIZE = 128
_TRAILING_WS = b" \t\r\n\x1a"


def is_eicar(head: bytes, size: int) -> bool:
    """True when a file of ``size`` bytes starting with ``head`` is the EICAR test file.

    The 68-byte string must start the file; it may be followed only by whitespace
    (space, tab, CR, LF, Ctrl-Z), and the file may be at most 128 bytes long.
    """
    if size < len(EICAR) or size > _MAX_SIZE:
        return False
    data = bytes(head[:size])
    if not data.startswith(EICAR):
        return False
    return data[len(EICAR) :].strip(_TRAILING_WS) == b""


class EicarDetector:
    name = "eicar"
    version = "eicar-1"
    hashes_needed: frozenset[str] = frozenset()

    def scan(self, obj: ScanObject) -> list[Finding]:
        if obj.size < len(EICAR) or obj.size > _MAX_SIZE:
            return []
        if not is_eicar(bytes(obj.data[:_MAX_SIZE]), obj.size):
            return []
        return [
            Finding(
                detector=self.name,
                name="EICAR-Test-File",
                severity=Severity.MALICIOUS,
                score=1.0,
                kind=FindingKind.SIGNATURE,
                details={"note": "the harmless EICAR anti-malware test file"},
            )
        ]


def make_detector(ctx: object) -> EicarDetector:
    return EicarDetector()
