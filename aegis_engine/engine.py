"""The engine's facade: the one object the CLI, the monitor and the GUI talk to."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from .config import ScanLimits, ScanOptions, limits_from_settings, load_settings
from .content import ContentSources
from .detectors.base import Detector
from .detectors.registry import DetectorContext, load_detectors
from .paths import AegisPaths
from .results import ScanSummary
from .scanning.cache import ScanCache
from .scanning.pipeline import ProgressCallback, ReportCallback, run_scan
from .scanning.scanner import FileScanner

WarningCallback = Callable[[str], None]


class Engine:
    """Scans files with every detector; thread-safe for one scan at a time per instance.

    Nothing heavy happens in the constructor: detectors are built on first use, rules are
    compiled on the first file that needs them, and a scan answered from the cache never
    compiles anything.
    """

    def __init__(
        self,
        paths: AegisPaths | None = None,
        *,
        extra_rules: Sequence[Path] = (),
        extra_hashes: Sequence[Path] = (),
        bundled_content: bool = True,
        plugins: bool = True,
        on_warning: WarningCallback | None = None,
    ) -> None:
        self.paths = paths or AegisPaths.default()
        self.settings = load_settings(self.paths.settings_file)
        self.limits: ScanLimits = limits_from_settings(self.settings)
        self.content = ContentSources.resolve(
            self.paths, tuple(extra_rules), tuple(extra_hashes), bundled=bundled_content
        )
        self._plugins = plugins
        self._on_warning = on_warning
        self.warnings: list[str] = []
        self._detectors: list[Detector] | None = None
        self._lock = threading.Lock()

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    @property
    def detectors(self) -> list[Detector]:
        with self._lock:
            if self._detectors is None:
                ctx = DetectorContext(self.paths, self.content, self.limits, self._warn)
                self._detectors = load_detectors(ctx, plugins=self._plugins)
            return self._detectors

    def signature_version(self, options: ScanOptions | None = None) -> str:
        """Identifies the whole signature set and the options that change results."""
        options = options or ScanOptions(limits=self.limits)
        digest = hashlib.sha256(b"aegis-sigset-1")
        for det in self.detectors:
            digest.update(f"{det.name}={det.version};".encode())
        digest.update(repr((options.limits, options.scan_archives)).encode())
        return digest.hexdigest()[:24]

    def default_options(self, **changes: object) -> ScanOptions:
        """Scan options with this engine's configured limits, changed as given."""
        return replace(ScanOptions(limits=self.limits), **changes)  # type: ignore[arg-type]

    def scan(
        self,
        targets: Iterable[str | Path],
        options: ScanOptions | None = None,
        *,
        on_report: ReportCallback | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> ScanSummary:
        """Scan files and folders; ``cancel.set()`` from another thread stops it soon."""
        options = options or self.default_options()
        cache = (
            ScanCache(self.paths.scan_cache_file, self.signature_version(options))
            if options.use_cache
            else None
        )
        tmpdir = Path(tempfile.mkdtemp(prefix="aegis-scan-"))
        try:
            scanner = FileScanner(self.detectors, options, tmpdir, self._warn)
            return run_scan(
                (str(t) for t in targets),
                scanner,
                options,
                cache=cache,
                on_report=on_report,
                on_progress=on_progress,
                cancel=cancel,
            )
        finally:
            if cache is not None:
                cache.close()
            shutil.rmtree(tmpdir, ignore_errors=True)
