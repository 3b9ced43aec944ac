"""The engine's facade: the one object the CLI, the monitor and the GUI talk to."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ScanLimits, ScanOptions, limits_from_settings, load_settings
from .content import ContentSources, content_stamp
from .decision import DecisionEngine
from .detectors.base import Detector
from .detectors.registry import DetectorContext, load_detectors
from .paths import AegisPaths
from .results import FileReport, ScanSummary
from .scanning.cache import ScanCache
from .scanning.pipeline import ProgressCallback, ReportCallback, run_scan
from .scanning.scanner import FileScanner
from .scanning.walk import FileEntry

if TYPE_CHECKING:
    from .history import History
    from .quarantine import Vault
    from .response import AskUser, Responder

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
        self.warnings: list[str] = []
        self._content_args = (tuple(extra_rules), tuple(extra_hashes), bundled_content)
        self.content = ContentSources.resolve(
            self.paths, tuple(extra_rules), tuple(extra_hashes), bundled=bundled_content
        )
        if self.content.problem:
            self.warnings.append(self.content.problem)
        self._plugins = plugins
        self._on_warning = on_warning
        self._content_faults: list[str] = []
        self._detectors: list[Detector] | None = None
        self._lock = threading.Lock()
        self._single: _SingleFileSession | None = None
        self._retired: list[_SingleFileSession] = []
        self.decisions = DecisionEngine.from_settings(self.settings)
        """Verdicts, policy and exclusions from the settings: the one place they apply."""
        self._quarantine: Vault | None = None
        self._history: History | None = None

    @property
    def quarantine(self) -> Vault:
        """The quarantine vault (built on first use; its first operation loads the key)."""
        from .quarantine import QuarantineSettings, Vault

        with self._lock:
            if self._quarantine is None:
                qs = QuarantineSettings.from_settings(self.settings)
                self._quarantine = Vault.for_paths(
                    self.paths, warn=self._warn, use_keyring=qs.use_keyring
                )
            return self._quarantine

    @property
    def history(self) -> History:
        """The detection history (the database opens on first use)."""
        from .history import History

        with self._lock:
            if self._history is None:
                self._history = History(self.paths.history_file, warn=self._warn)
            return self._history

    def responder(self, *, apply_actions: bool, ask: AskUser | None = None) -> Responder:
        """Decides about scan reports, acts per policy (when ``apply_actions``), records."""
        from .response import Responder

        return Responder(
            self.decisions,
            # Reporting never touches the vault: do not load it (keyring, cryptography).
            vault=self.quarantine if apply_actions else None,
            history=self.history,
            apply_actions=apply_actions,
            ask=ask,
        )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    def _fault(self, message: str) -> None:
        self._content_faults.append(message)
        self._warn(message)

    def content_problems(self) -> list[str]:
        """Signature content that could not be used: hash lists or rule files skipped, a
        detector disabled (each was warned about). Everything else kept detecting; a scan
        that found nothing ends with exit 2 when this is not empty."""
        problems = list(self._content_faults)
        with self._lock:
            detectors = list(self._detectors or ())
        for det in detectors:
            for path, message in getattr(det, "broken", ()):
                problems.append(f"rule file {path} skipped: {message}")
        return problems

    def _reload_if_content_changed(self) -> None:
        """Pick up a content version switched in since the detectors were built (lock held)."""
        if not self._content_args[2] or content_stamp(self.paths) == self.content.stamp:
            return
        rules, hashes, bundled = self._content_args
        self.content = ContentSources.resolve(self.paths, rules, hashes, bundled=bundled)
        if self.content.problem:
            self._warn(self.content.problem)
        self._detectors = None
        if self._single is not None:  # another thread may still use it: closed in close()
            self._retired.append(self._single)
            self._single = None

    @property
    def content_version(self) -> int:
        """The content version in force (0: bundled)."""
        return self.content.version

    @property
    def detectors(self) -> list[Detector]:
        with self._lock:
            self._reload_if_content_changed()
            if self._detectors is None:
                ctx = DetectorContext(
                    self.paths, self.content, self.limits, self._warn, fault=self._fault
                )
                self._detectors = load_detectors(ctx, plugins=self._plugins)
            return self._detectors

    def signature_version(self, options: ScanOptions | None = None) -> str:
        """Identifies the whole signature set and the options that change results."""
        return _sigver(self.detectors, options or self.default_options())

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
        decide: ReportCallback | None = None,
    ) -> ScanSummary:
        """Scan files and folders; ``cancel.set()`` from another thread stops it soon.

        ``decide`` (e.g. a :meth:`responder`'s) runs on every report that is not clean before
        it is counted, so the summary counts the final verdicts."""
        options = options or self.default_options()
        cache = (
            ScanCache(self.paths.scan_cache_file, self.signature_version(options), self._warn)
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
                decide=decide,
            )
        finally:
            if cache is not None:
                cache.close()
            shutil.rmtree(tmpdir, ignore_errors=True)

    # -- one file at a time (on-access scanning) -----------------------------------------
    def scan_file(self, path: str | Path) -> FileReport | None:
        """Scan one file now, reusing one scanner and the scan cache between calls.

        For real-time protection: thread-safe, cheap to call often. Returns None when the
        path is not a regular file any more (vanished, replaced by a link, FIFO, folder).
        """
        session = self._single_file_session()
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        entry = FileEntry(str(path), st)
        with session.lock:
            hit = session.cache.get(entry.path, st)
        if hit is not None:
            return hit
        report = session.scanner.scan_file(entry)
        if report is not None:
            with session.lock:
                session.cache.put(report, st)
                session.cache.flush()
        return report

    def _single_file_session(self) -> _SingleFileSession:
        detectors = self.detectors  # built first: that property takes the same lock
        with self._lock:
            if self._single is None:
                self._single = _SingleFileSession(self, detectors, self.default_options())
            return self._single

    def close(self) -> None:
        """Release what scan_file() keeps open (cache connection, temp folder)."""
        with self._lock:
            if self._single is not None:
                self._single.close()
                self._single = None
            for retired in self._retired:
                retired.close()
            self._retired.clear()
            if self._history is not None:
                self._history.close()
                self._history = None


class _SingleFileSession:
    """What scan_file() keeps between calls."""

    def __init__(self, engine: Engine, detectors: Sequence[Detector], options: ScanOptions) -> None:
        self.lock = threading.Lock()
        self.tmpdir = Path(tempfile.mkdtemp(prefix="aegis-scan-"))
        self.scanner = FileScanner(detectors, options, self.tmpdir, engine._warn)
        self.cache = ScanCache(
            engine.paths.scan_cache_file, _sigver(detectors, options), engine._warn
        )

    def close(self) -> None:
        with self.lock, contextlib.suppress(Exception):
            self.cache.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _sigver(detectors: Sequence[Detector], options: ScanOptions) -> str:
    digest = hashlib.sha256(b"aegis-sigset-1")
    for det in detectors:
        digest.update(f"{det.name}={det.version};".encode())
    digest.update(repr((options.limits, options.scan_archives)).encode())
    return digest.hexdigest()[:24]
