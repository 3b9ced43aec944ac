"""Aegis detection engine: headless, never imports Qt.

The public API is the :class:`Engine` facade and the plain result types.
"""

from .config import ScanLimits, ScanOptions
from .engine import Engine
from .errors import AegisError
from .paths import AegisPaths
from .results import FileReport, Finding, FindingKind, ObjectResult, ScanSummary, Severity, Verdict
from .scanning.pipeline import ScanProgress

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
