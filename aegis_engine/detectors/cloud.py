"""Cloud reputation as a detector: k-anonymous look-ups of the files the policy names.

Built only when the user allowed ``cloud-lookup`` and settings name a ``[cloud] lookup_url``
(otherwise the factory returns None: no look-up, no socket, nothing changes). It looks up
top-level programs (PE, ELF, Mach-O), scripts and documents with macros; files flagged by
another detector are looked up by the scan's decision step
(:func:`aegis_engine.privacy.reputation.annotate_report`). A known-bad answer is a
signature-grade finding; a known-good answer is an informational finding that lets the
decision engine clear an ML-only finding. When the service cannot be reached the local
verdict stands (one warning per scan, no finding, no error).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..results import Finding
from .base import ScanObject
from .registry import DetectorContext

if TYPE_CHECKING:
    from ..privacy.lookup import RangeLookup

__all__ = ["CloudReputationDetector", "make_detector", "wanted"]

CLOUD_DETECTOR = "cloud-reputation"  # the same name as privacy.reputation.CLOUD_DETECTOR

_PROGRAMS = {"PE", "MZ", "ELF", "MACHO", "SCRIPT"}
_SCRIPT_EXTENSIONS = {
    "ps1", "psm1", "vbs", "vbe", "js", "jse", "wsf", "hta", "bat", "cmd", "sh", "py", "pl",
    "rb", "lnk", "jar", "msi", "scr", "com", "exe", "dll", "elf", "so", "apk",
}  # fmt: skip
_MACRO_MARKS = (b"vbaProject.bin", "_VBA_PROJECT".encode("utf-16-le"), "VBA".encode("utf-16-le"))


def wanted(obj: ScanObject) -> bool:
    """True for what the look-up policy names: programs, scripts, documents with macros."""
    if obj.depth != 0:
        return False
    if obj.filetype in _PROGRAMS or obj.extension in _SCRIPT_EXTENSIONS:
        return True
    if obj.filetype in ("OLE2", "ZIP") and obj.size <= 64 * 1024 * 1024:
        data = obj.data if hasattr(obj.data, "find") else bytes(obj.data)  # mmap: no copy
        return any(data.find(mark) >= 0 for mark in _MACRO_MARKS)
    return False


class CloudReputationDetector:
    name = CLOUD_DETECTOR
    hashes_needed = frozenset({"sha256"})

    def __init__(self, ctx: DetectorContext, version: str) -> None:
        from ..privacy.reputation import make_lookup

        self._lookup: RangeLookup = make_lookup(ctx.paths)
        self._warn = ctx.warn
        self._version = version
        self._warned = threading.Event()

    @property
    def version(self) -> str:
        return self._version

    def scan(self, obj: ScanObject) -> list[Finding]:
        digest = obj.hashes.get("sha256")
        if not digest or not wanted(obj):
            return []
        from ..errors import PrivacyError
        from ..privacy.reputation import Reputation, finding_for

        try:
            result = self._lookup.lookup(digest)
        except PrivacyError as exc:
            if not self._warned.is_set():
                self._warned.set()
                self._warn(f"cloud look-up not made, local verdicts only: {exc}")
            return []
        if result.reputation is Reputation.UNKNOWN:
            return []
        return [finding_for(result)]


def make_detector(ctx: DetectorContext) -> CloudReputationDetector | None:
    from ..privacy.endpoints import lookup_enabled

    version = lookup_enabled(ctx.paths, ctx.warn)
    if version is None:
        return None
    return CloudReputationDetector(ctx, version)
