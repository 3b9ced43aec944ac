"""Scan limits and options, with defaults modelled on ClamAV's (the settings file's
``[limits]`` table is read by :mod:`aegis_engine.settings`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

from .errors import ConfigError

MiB = 1024 * 1024


@dataclass(frozen=True)
class ScanLimits:
    """Limits for one scan target (a top-level file and everything unpacked from it).

    Reaching any of them makes the target's result ``incomplete``, never silently clean.
    Defaults follow ClamAV's (MaxFileSize, MaxScanSize, MaxRecursion, MaxFiles, MaxScanTime).
    """

    max_file_size: int = 100 * MiB
    """Files (and archive members) larger than this are not scanned."""
    max_scan_size: int = 400 * MiB
    """Bytes that may be extracted from one target, all members together."""
    max_recursion: int = 17
    """How deep containers may nest (a file is depth 0, its members depth 1, ...)."""
    max_files: int = 10_000
    """Members that may be extracted from one target."""
    max_scan_time: float = 120.0
    """Seconds one target may take, all members together."""
    yara_timeout: int = 60
    """Seconds one YARA match on one object may take."""
    max_compression_ratio: int = 0
    """Reserved: 0 means the byte limits alone guard against ratio bombs."""
    in_memory_member_size: int = 8 * MiB
    """Members up to this size are held in memory; larger ones go to a private temp file."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise ConfigError(f"scan limit {f.name} must not be negative (got {value})")


@dataclass(frozen=True)
class ScanOptions:
    """What one scan does beyond the limits."""

    limits: ScanLimits = field(default_factory=ScanLimits)
    jobs: int = 0
    """Worker threads; 0 means one per core."""
    use_cache: bool = True
    exclude: tuple[str, ...] = ()
    """Glob patterns (fnmatch, matched against the full path and the name)."""
    follow_symlinks: bool = False
    """Follow symlinks that leave the scanned target (loops are always detected)."""
    scan_archives: bool = True
    one_file_system: bool = False

    def effective_jobs(self) -> int:
        if self.jobs < 0:
            raise ConfigError("--jobs must be 0 (all cores) or a positive number")
        return self.jobs or max(
            1,
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else (os.cpu_count() or 1),
        )
