"""Tunables of real-time protection in one frozen dataclass, and the default folders."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from ..errors import ConfigError

__all__ = ["MonitorOptions", "default_protected_folders", "default_watch_folders"]


@dataclass(frozen=True)
class MonitorOptions:
    """Every threshold of the monitor, with the reason for its default in the docs."""

    # -- on-access ----------------------------------------------------------------------------
    close_grace: float = 0.005
    """Seconds to wait after a writer closes a file before scanning it (coalesces a close
    followed at once by another open and write)."""
    quiet_delay: float = 1.0
    """Seconds without writes before a file that was never closed (or just created) is scanned."""
    max_defer: float = 10.0
    """A file written without pause is still scanned this long after its first event."""
    max_pending: int = 4096
    """Files waiting to be scanned; past this, events degrade to "rescan this folder later"."""
    max_rescan_folders: int = 1024
    """Folders remembered for a later rescan; past this, whole watched roots are rescanned."""
    exclude: tuple[str, ...] = ()
    """fnmatch globs (full path or name) that are neither scanned nor watched for ransomware."""
    backend: str = "auto"
    """``auto`` (inotify on Linux, else watchdog's native observer), ``inotify``, ``watchdog``
    or ``polling``."""
    polling_interval: float = 30.0
    """Seconds between two passes of the polling fallback (used when watches run out)."""
    root_check_interval: float = 1.0
    """Seconds between checks for a deleted watched root coming back."""

    # -- processes ---------------------------------------------------------------------------
    process_interval: float = 1.0
    """Seconds between two looks at the process list."""
    exe_cache_size: int = 4096
    """Executables whose verdict is remembered by file identity."""

    # -- ransomware shield -------------------------------------------------------------------
    burst_window: float = 20.0
    """Seconds over which suspicious file operations in a protected folder are counted."""
    min_encrypted_writes: int = 2
    """Files written with high-entropy content of no known type needed for a burst."""
    min_destroyed: int = 1
    """Pre-existing files deleted, renamed to an unknown extension or overwritten encrypted."""
    entropy_margin: float = 0.6
    """A sample counts as encrypted when its entropy is within this many bits/byte of what
    random data of the same length would show (7.35 bits/byte for a 4 KiB sample)."""
    min_sample: int = 512
    """Files smaller than this are too short to judge by entropy."""
    sample_size: int = 4096
    """Bytes read from the start of a written file to estimate its entropy."""
    canaries: bool = True
    """Plant hidden decoy files in each protected folder."""
    report_delay: float = 0.25
    """Seconds after suspending before the incident is reported (late events join its list)."""
    cooldown: float = 2.0
    """Seconds after a trigger during which new operations join the same incident."""
    max_incident_files: int = 10_000
    """Touched files listed per incident (the total is always counted)."""

    # -- events ------------------------------------------------------------------------------
    event_queue_size: int = 10_000
    """Events waiting for the dispatcher; a slow subscriber slows producers, events are not
    dropped unless the queue stays full for ``event_put_timeout`` (then counted and reported)."""
    event_put_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "inotify", "watchdog", "polling"):
            raise ConfigError(f"unknown monitor backend {self.backend!r}")
        for name in ("max_pending", "max_rescan_folders", "event_queue_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"monitor option {name} must be at least 1")
        for name in ("close_grace", "quiet_delay", "max_defer", "process_interval"):
            if getattr(self, name) < 0:
                raise ConfigError(f"monitor option {name} must not be negative")
        if self.min_encrypted_writes < 1 or self.min_destroyed < 0:
            raise ConfigError("monitor burst thresholds must be positive")


def _existing(paths: list[str]) -> list[Path]:
    seen: dict[str, Path] = {}
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            seen.setdefault(os.path.realpath(path), path)
    return list(seen.values())


def default_watch_folders() -> list[Path]:
    """The user's Downloads, Desktop and Documents folders and the temp folder (those that
    exist)."""
    return _existing(
        [
            platformdirs.user_downloads_dir(),
            platformdirs.user_desktop_dir(),
            platformdirs.user_documents_dir(),
            tempfile.gettempdir(),
        ]
    )


def default_protected_folders() -> list[Path]:
    """Folders the ransomware shield guards by default: Documents, Desktop and Pictures."""
    return _existing(
        [
            platformdirs.user_documents_dir(),
            platformdirs.user_desktop_dir(),
            platformdirs.user_pictures_dir(),
        ]
    )


@dataclass(frozen=True)
class FolderKinds:
    """Folders named by the behaviour rules (``temp``, ``downloads``, ...)."""

    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> FolderKinds:
        temp = (
            {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
            if os.name != "nt"
            else {tempfile.gettempdir()}
        )
        if sys.platform == "win32":  # pragma: no cover - not run on the CI
            temp.add(os.path.expandvars(r"%WINDIR%\Temp"))
        home = str(Path.home())
        return cls(
            {
                "temp": tuple(sorted(os.path.realpath(p) for p in temp)),
                "downloads": (os.path.realpath(platformdirs.user_downloads_dir()),),
                "desktop": (os.path.realpath(platformdirs.user_desktop_dir()),),
                "documents": (os.path.realpath(platformdirs.user_documents_dir()),),
                "home": (os.path.realpath(home),),
            }
        )

    def get(self, kind: str) -> tuple[str, ...]:
        return self.folders.get(kind, ())
