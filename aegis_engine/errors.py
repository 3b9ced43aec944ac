"""The one exception hierarchy of Aegis: every error the engine raises derives from AegisError."""

from __future__ import annotations


class AegisError(Exception):
    """Root of all Aegis errors."""


class ConfigError(AegisError):
    """Settings or command-line options are invalid."""


class ContentError(AegisError):
    """Signature content (rules, hash lists, model) is missing or unusable."""


class RuleCompileError(ContentError):
    """A YARA rule file could not be compiled."""


class HashListError(ContentError):
    """A hash list file could not be read."""


class ScanError(AegisError):
    """A scan target could not be scanned."""


class LimitExceeded(ScanError):
    """A configured scan limit was reached; the result is incomplete, never clean."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"{limit}: {detail}")
        self.limit = limit
        self.detail = detail


class ContainerError(ScanError):
    """An archive or compressed stream is damaged or unsupported."""


class DetectorError(ScanError):
    """A detector failed on one object; other detectors go on."""


class ScanCancelled(AegisError):
    """The scan was cancelled by the caller."""
