"""What a scan does for the privacy purposes, in one place for every client (CLI, monitor,
tray app): look up flagged files when ``cloud-lookup`` is on, count usage when
``usage-stats`` is on. With the default settings both are off and nothing here opens a file
beyond the consent store, let alone a connection."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import AegisError
from ..paths import AegisPaths
from ..results import FileReport, ScanSummary

if TYPE_CHECKING:
    from .lookup import RangeLookup

__all__ = ["ScanPrivacy"]


class ScanPrivacy:
    def __init__(self, paths: AegisPaths, warn: Callable[[str], None] | None = None) -> None:
        self.paths = paths
        self._warn = warn
        self._lookup: RangeLookup | None = None
        self._enabled: bool | None = None

    def _lookup_client(self) -> RangeLookup | None:
        if self._enabled is None:
            from .endpoints import lookup_enabled
            from .reputation import make_lookup

            self._enabled = lookup_enabled(self.paths, self._warn) is not None
            if self._enabled:
                self._lookup = make_lookup(self.paths, warn=self._warn)
        return self._lookup

    def before_decision(self, report: FileReport) -> None:
        """Add cloud evidence to a flagged report (a failure keeps the local verdict)."""
        lookup = self._lookup_client()
        if lookup is None:
            return
        from .reputation import annotate_report

        try:
            annotate_report(report, lookup, self._warn)
        except AegisError as exc:  # pragma: no cover - annotate_report warns itself
            if self._warn is not None:
                self._warn(str(exc))

    def after_scan(self, summary: ScanSummary) -> None:
        """Count the scan for usage statistics (only while they are on). Never raises."""
        with contextlib.suppress(Exception):
            from .endpoints import CloudSettings

            if not CloudSettings.for_paths(self.paths).usage_stats_url:
                return  # nowhere to send them: nothing is counted
            from .consent import ConsentStore
            from .usage import count, queue_due_report

            consent = ConsentStore.for_paths(self.paths)
            if not consent.is_granted("usage-stats"):
                return
            count(
                self.paths,
                consent,
                scans=1,
                files_scanned=summary.files,
                detections=summary.threats,
            )
            queue_due_report(self.paths, consent)
