"""Aegis detection engine: headless, never imports Qt.

The public API is the :class:`Engine` facade and the plain result types. They are imported
on first use (PEP 562), so a process that needs one module of the package (a scan worker's
preload server, the emulation child) does not pay for importing all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ScanLimits, ScanOptions
    from .engine import Engine
    from .errors import AegisError
    from .paths import AegisPaths
    from .results import (
        FileReport,
        Finding,
        FindingKind,
        ObjectResult,
        ScanSummary,
        Severity,
        Verdict,
    )
    from .scanning.pipeline import ScanProgress

_HOMES = {
    "AegisError": ".errors",
    "AegisPaths": ".paths",
    "Engine": ".engine",
    "FileReport": ".results",
    "Finding": ".results",
    "FindingKind": ".results",
    "ObjectResult": ".results",
    "ScanLimits": ".config",
    "ScanOptions": ".config",
    "ScanProgress": ".scanning.pipeline",
    "ScanSummary": ".results",
    "Severity": ".results",
    "Verdict": ".results",
}

__all__ = [
    "AegisError",
    "AegisPaths",
    "Engine",
    "FileReport",
    "Finding",
    "FindingKind",
    "ObjectResult",
    "ScanLimits",
    "ScanOptions",
    "ScanProgress",
    "ScanSummary",
    "Severity",
    "Verdict",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
