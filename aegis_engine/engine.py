"""The engine's facade: the one object the CLI, the monitor and the GUI talk to."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .config import ScanLimits, ScanOptions
from .content import ContentSources, content_stamp
from .decision import DecisionEngine
from .detectors.base import Detector
from .detectors.registry import DetectorContext, factories_from_env, load_detectors
from .paths import AegisPaths
from .response import OutcomeService
from .results import FileReport, ScanSummary
from .scanning.cache import ScanCache
from .scanning.pipeline import ProgressCallback, ReportCallback, run_scan
from .scanning.scanner import FileScanner
from .scanning.walk import FileEntry
from .scanning.workers import (
    DEFAULT_MEMORY_LIMIT,
    PoolScan,
    WorkerConfig,
    WorkerPool,
    detector_limits,
    incomplete_report,
    scan_one,
)
from .settings import Settings, SettingsStore

if TYPE_CHECKING:
    from .history import History
    from .quarantine import Vault

WarningCallback = Callable[[str], None]


class Engine:
    """Scans files with every detector; thread-safe for one scan at a time per instance.

    Files are scanned in worker processes (``scanning/workers.py``) that load the detectors'
    content; this process only walks, answers from the scan cache and decides. Nothing heavy
    happens in the constructor, and a scan answered from the cache starts no worker.
    Call :meth:`close` when done (it stops the workers; they also stop when the engine is
    garbage-collected or the process exits).
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
        worker_memory_limit: int = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.paths = paths or AegisPaths.default()
        self._on_warning = on_warning
        self.warnings: list[str] = []
        self.settings_store = SettingsStore(self.paths.settings_file, warn=self._warn)
        """The settings file: read, validated, written and watched here only."""
        self.settings: Settings
        self.limits: ScanLimits
        self.decisions: DecisionEngine
        """Verdicts, policy and exclusions from the settings: the one place they apply."""
        self._use_settings(self.settings_store.current)
        self.settings_store.subscribe(self._use_settings)
        self._content_args = (tuple(extra_rules), tuple(extra_hashes), bundled_content)
        self.content = ContentSources.resolve(
            self.paths, tuple(extra_rules), tuple(extra_hashes), bundled=bundled_content
        )
        if self.content.problem:
            self.warnings.append(self.content.problem)
        self._plugins = plugins
        self._extra_factories = factories_from_env()
        self._worker_memory_limit = worker_memory_limit
        self._pools: dict[ScanLimits, WorkerPool] = {}
        self._content_faults: list[str] = []
        self._detectors: list[Detector] | None = None
        self._versions: tuple[tuple[str, str], ...] | None = None
        self._lock = threading.Lock()
        self._single: _SingleFileSession | None = None
        self._retired: list[_SingleFileSession] = []
        self._quarantine: Vault | None = None
        self._history: History | None = None
        self.outcomes = OutcomeService(
            lambda: self.decisions,
            vault=lambda: self.quarantine,
            history=lambda: self.history,
            settings=self.settings_store,
        )
        """Decide -> act -> record for every client: the one path for outcomes."""

    def _use_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.decisions = settings.decision_engine()

    def reload_settings(self) -> Settings:
        """Read the settings file again (listeners of :attr:`settings_store` hear of it)."""
        return self.settings_store.reload()

    @property
    def quarantine(self) -> Vault:
        """The quarantine vault (built on first use; its first operation loads the key)."""
        from .quarantine import QuarantineSettings, Vault

        with self._lock:
            if self._quarantine is None:
                qs: QuarantineSettings = self.settings.quarantine
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

    def _warn_once(self, message: str) -> None:
        """Warnings from the workers: each of them loads the same content."""
        if message not in self.warnings:
            self._warn(message)

    def worker_pool(self, limits: ScanLimits | None = None) -> WorkerPool:
        """The worker processes for scans with ``limits`` (started on first use, kept warm)."""
        key = detector_limits(limits or self.limits)
        with self._lock:
            self._reload_if_content_changed()  # a scan without the cache asks nothing else
            pool = self._pools.get(key)
            if pool is None:
                config = WorkerConfig(
                    self.paths,
                    self.content,
                    key,
                    plugins=self._plugins,
                    extra_factories=self._extra_factories,
                    memory_limit=self._worker_memory_limit,
                )
                pool = WorkerPool(config, self.default_options().effective_jobs())
                weakref.finalize(self, pool.shutdown)
                self._pools[key] = pool
            return pool

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        if self._on_warning is not None:
            self._on_warning(message)

    def _reload_if_content_changed(self) -> None:
        """Pick up a content version switched in since the detectors were built (lock held)."""
        if not self._content_args[2] or content_stamp(self.paths) == self.content.stamp:
            return
        rules, hashes, bundled = self._content_args
        self.content = ContentSources.resolve(self.paths, rules, hashes, bundled=bundled)
        if self.content.problem:
            self._warn(self.content.problem)
        self._detectors = None
        self._versions = None
        if self._single is not None:  # another thread may still use it: closed in close()
            self._retired.append(self._single)
            self._single = None
        for pool in self._pools.values():  # their workers loaded the old content
            pool.retire()
        self._pools.clear()

    @property
    def content_version(self) -> int:
        """The content version in force (0: bundled)."""
        return self.content.version

    def _fault(self, message: str) -> None:
        """Content that could not be used (each worker loads the same content: said once)."""
        if message in self._content_faults:
            return
        self._content_faults.append(message)
        self._warn(message)

    def content_problems(self) -> list[str]:
        """Signature content that could not be used: hash lists or rule files skipped, a
        detector disabled (each was warned about). Everything else kept detecting; a scan
        that found nothing ends with exit 2 when this is not empty."""
        return list(self._content_faults)

    @property
    def detectors(self) -> list[Detector]:
        """The detectors, built in this process: only for scanning here when no worker can
        start (their content is loaded on first use). Scans through workers never build them
        here: the content is loaded once, in the workers' preload server."""
        with self._lock:
            self._reload_if_content_changed()
            if self._detectors is None:
                self._detectors = self._build_detectors()
            return self._detectors

    def _build_detectors(self) -> list[Detector]:
        ctx = DetectorContext(
            self.paths, self.content, detector_limits(self.limits), self._warn, fault=self._fault
        )
        return load_detectors(ctx, plugins=self._plugins, extra=self._extra_factories)

    def _detector_versions(self) -> tuple[tuple[str, str], ...]:
        """Each detector's name and content fingerprint (the scan cache's key). The
        detectors are built for it and dropped: their content is never loaded here."""
        with self._lock:
            self._reload_if_content_changed()
            if self._versions is None:
                built = self._detectors or self._build_detectors()
                self._versions = tuple((d.name, d.version) for d in built)
            return self._versions

    def signature_version(self, options: ScanOptions | None = None) -> str:
        """Identifies the whole signature set and the options that change results."""
        return _sigver(self._detector_versions(), options or self.default_options())

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

        Every report that is not clean is decided before it is counted or handed on, so the
        summary and ``on_report`` see final verdicts: by ``decide`` (e.g. the CLI's call to
        :meth:`OutcomeService.respond`, which must leave the report final), else by
        :meth:`OutcomeService.decide`."""
        options = options or self.default_options()
        if decide is None:
            outcomes = self.outcomes

            def decide(report: FileReport) -> None:
                outcomes.decide(report)

        cache = (
            ScanCache(self.paths.scan_cache_file, self.signature_version(options), self._warn)
            if options.use_cache
            else None
        )
        fallback = _InProcessScanner(self, options)
        workers = PoolScan(
            self.worker_pool(options.limits),
            options,
            options.effective_jobs(),
            self._warn_once,
            fallback,
            fault=self._fault,
        )
        try:
            return run_scan(
                (str(t) for t in targets),
                workers,
                options,
                cache=cache,
                on_report=on_report,
                on_progress=on_progress,
                cancel=cancel,
                decide=decide,
            )
        finally:
            workers.close()
            fallback.close()
            if cache is not None:
                cache.close()

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
        report = scan_one(
            self.worker_pool(),
            session.options,
            entry,
            self._warn_once,
            session.fallback,
            idle_timeout=self.settings.realtime.worker_idle,
        )
        if report is not None:
            with session.lock:
                session.cache.put(report, st)
                session.cache.flush()
        return report

    def _single_file_session(self) -> _SingleFileSession:
        versions = self._detector_versions()  # first: it takes the same lock
        with self._lock:
            if self._single is None:
                self._single = _SingleFileSession(self, versions, self.default_options())
            return self._single

    def close(self) -> None:
        """Stop the worker processes; release what scan_file() keeps open."""
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.shutdown()
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

    def __init__(
        self, engine: Engine, versions: Sequence[tuple[str, str]], options: ScanOptions
    ) -> None:
        self.lock = threading.Lock()
        self.options = options
        self.fallback = _InProcessScanner(engine, options)
        self.cache = ScanCache(
            engine.paths.scan_cache_file, _sigver(versions, options), engine._warn
        )

    def close(self) -> None:
        with self.lock, contextlib.suppress(Exception):
            self.cache.close()
        self.fallback.close()


class _InProcessScanner:
    """Scans in this process, only when no worker process can be started at all."""

    def __init__(self, engine: Engine, options: ScanOptions) -> None:
        self._engine = engine
        self._options = options
        self._lock = threading.Lock()
        self._scanner: FileScanner | None = None
        self._tmpdir: Path | None = None

    def __call__(self, entry: FileEntry) -> FileReport | None:
        with self._lock:
            if self._scanner is None:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="aegis-scan-"))
                self._scanner = FileScanner(
                    self._engine.detectors, self._options, self._tmpdir, self._engine._warn
                )
            scanner = self._scanner
        try:
            return scanner.scan_file(entry)
        except MemoryError:
            return incomplete_report(entry, "memory limit: out of memory scanning this file")

    def close(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _sigver(versions: Sequence[tuple[str, str]], options: ScanOptions) -> str:
    digest = hashlib.sha256(b"aegis-sigset-1")
    for name, version in versions:
        digest.update(f"{name}={version};".encode())
    digest.update(repr((options.limits, options.scan_archives)).encode())
    return digest.hexdigest()[:24]
