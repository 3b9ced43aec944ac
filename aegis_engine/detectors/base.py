"""The one protocol every detector implements, and the object it looks at."""

from __future__ import annotations

import mmap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..results import Finding

Buffer = bytes | bytearray | memoryview | mmap.mmap
"""Whole content of an object: bytes, or a read-only mmap/memoryview of a file."""


@dataclass
class ScanObject:
    """One thing to scan: a file on disk, or a member unpacked from a container.

    ``data`` is the whole content (an mmap for files on disk, so nothing large is copied into
    Python memory). Hashes are computed once by the scanner before detectors run.
    """

    path: str
    """Display path; members are named ``outer!member``."""
    name: str
    """Base name of the file or member (used for the YARA ``filename`` external)."""
    data: Buffer
    size: int
    hashes: Mapping[str, str] = field(default_factory=dict)
    """Hex digests by algorithm name (``sha256`` always; ``md5``/``sha1`` when needed)."""
    filetype: str = "unknown"
    """Sniffed type label, e.g. ``PE``, ``ELF``, ``ZIP``, ``TEXT`` (see scanning.sniff)."""
    depth: int = 0
    """0 for a file on disk, 1 for its members, ..."""
    owner: str = ""
    disk_path: str | None = None
    """The real path when the object is a file on disk, else None."""

    @property
    def extension(self) -> str:
        dot = self.name.rfind(".")
        return self.name[dot + 1 :].lower() if dot > 0 else ""


@runtime_checkable
class Detector(Protocol):
    """A detector reports findings about one object; it never decides verdicts or actions.

    ``scan`` is called from several worker threads at once and must be thread-safe.
    It may raise :class:`~aegis_engine.errors.LimitExceeded` (e.g. a match timeout) or
    :class:`~aegis_engine.errors.DetectorError`; the scanner records either as a problem
    of that object and goes on with the other detectors.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str:
        """Fingerprint of the detector's content: a change invalidates the scan cache."""
        ...

    @property
    def hashes_needed(self) -> frozenset[str]:
        """Hash algorithms this detector reads from ``ScanObject.hashes``."""
        ...

    def scan(self, obj: ScanObject) -> list[Finding]: ...
