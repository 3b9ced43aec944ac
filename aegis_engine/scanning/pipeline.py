"""Runs a whole scan: walk in this thread, answer from the cache, scan the other files in
worker processes (``workers.py``).

Memory stays bounded: the walk is lazy, at most two chunks per worker are queued, and only
reports of files that are not clean are kept.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import ScanOptions
from ..results import FileReport, ObjectResult, ScanSummary
from .cache import ScanCache
from .walk import FileEntry, SkipGlobs, Skipped, WalkItem, WalkProblem, walk
from .workers import PoolScan


@dataclass(frozen=True)
class ScanProgress:
    files: int
    bytes: int
    threats: int
    current: str


ReportCallback = Callable[[FileReport], None]
_LOOKAHEAD = 256  # walk items looked up in the cache together
_CHUNK_FILES = 32  # files handed to a worker at once ...
_CHUNK_BYTES = 8 << 20  # ... or fewer, when they add up to this many bytes
_CANCEL_POLL = 0.25  # seconds between looks at the cancel flag while waiting for workers


def _batches(items: Iterator[WalkItem], size: int) -> Iterator[list[WalkItem]]:
    while batch := list(itertools.islice(items, size)):
        yield batch


def _problem_report(item: WalkProblem) -> FileReport:
    return FileReport(
        item.path, item.verdict, [ObjectResult(item.path, item.verdict, problems=[item.message])]
    )


ProgressCallback = Callable[[ScanProgress], None]


def run_scan(
    targets: Iterable[str],
    workers: PoolScan,
    options: ScanOptions,
    *,
    cache: ScanCache | None = None,
    on_report: ReportCallback | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    decide: ReportCallback | None = None,
) -> ScanSummary:
    """Scan ``targets``: walk here, answer unchanged files from ``cache``, hand the rest to
    the worker processes in chunks. ``decide`` may change a report's verdicts (policy,
    exclusions) after it is cached as found and before it is counted and handed to
    ``on_report``."""
    summary = ScanSummary()
    started = time.monotonic()
    jobs = options.effective_jobs()
    pending: list[FileEntry] = []
    pending_bytes = 0
    poll = _CANCEL_POLL if cancel is not None else None

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def deliver(report: FileReport | None, entry: FileEntry | None) -> None:
        if report is None:
            return
        if cache is not None and entry is not None and not report.cached:
            cache.put(report, entry.st)  # the detectors' findings, before any policy
        if decide is not None and report.objects:
            decide(report)
        summary.add(report, is_file=entry is not None)
        if on_report is not None:
            on_report(report)
        if on_progress is not None:
            on_progress(ScanProgress(summary.files, summary.bytes, summary.threats, report.path))

    def drain() -> None:
        for entry, report in workers.collect(poll):
            deliver(report, entry)

    def submit() -> None:
        nonlocal pending, pending_bytes
        if pending:
            workers.submit(pending)
            pending, pending_bytes = [], 0
            while workers.backlog >= jobs * 2 and not cancelled():
                drain()

    items = walk(
        targets,
        exclude=SkipGlobs(options.exclude),
        follow_symlinks=options.follow_symlinks,
        one_file_system=options.one_file_system,
    )
    try:
        for batch in _batches(items, _LOOKAHEAD):
            if cancelled():
                break
            files = [i for i in batch if isinstance(i, FileEntry)]
            hits = (
                cache.get_many([(f.path, f.st) for f in files])
                if cache is not None
                else [None] * len(files)
            )
            cached = {id(f): hit for f, hit in zip(files, hits, strict=True)}
            for item in batch:
                if isinstance(item, Skipped):
                    continue
                if isinstance(item, WalkProblem):
                    deliver(_problem_report(item), None)
                    continue
                hit = cached[id(item)]
                if hit is not None:
                    deliver(hit, item)
                    continue
                # Files go to the workers in chunks: one hand-off per file would cost more
                # than scanning a small file.
                pending.append(item)
                pending_bytes += item.st.st_size
                if len(pending) >= _CHUNK_FILES or pending_bytes >= _CHUNK_BYTES:
                    submit()
            submit()
        while workers.backlog and not cancelled():
            drain()
        if cancelled():
            summary.cancelled = True
            workers.cancel()
    finally:
        if cache is not None:
            cache.flush()
    summary.seconds = time.monotonic() - started
    return summary
