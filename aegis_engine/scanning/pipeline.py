"""Runs a whole scan: walk in this thread, scan files on a pool, answer from the cache.

Memory stays bounded: the walk is lazy, at most a few files per worker are in flight, and
only reports of files that are not clean are kept.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from ..config import ScanOptions
from ..results import FileReport, ObjectResult, ScanSummary, Verdict
from .cache import ScanCache
from .scanner import FileScanner
from .walk import Exclusions, FileEntry, Skipped, WalkItem, WalkProblem, walk


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
Scanned = tuple[FileEntry, FileReport | None]


def _internal_error(entry: FileEntry, exc: BaseException) -> FileReport:
    problem = f"internal error: {exc!r}"
    return FileReport(
        entry.path, Verdict.ERROR, [ObjectResult(entry.path, Verdict.ERROR, problems=[problem])]
    )


def _scan_chunk(
    scanner: FileScanner, entries: list[FileEntry], cancel: threading.Event | None
) -> list[Scanned]:
    """A worker's task: scan a few files; stop early when the scan is cancelled."""
    out: list[Scanned] = []
    for entry in entries:
        if cancel is not None and cancel.is_set():
            break
        try:
            out.append((entry, scanner.scan_file(entry)))
        except Exception as exc:  # a bug must cost one file, never the whole scan
            out.append((entry, _internal_error(entry, exc)))
    return out


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
    scanner: FileScanner,
    options: ScanOptions,
    *,
    cache: ScanCache | None = None,
    on_report: ReportCallback | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    decide: ReportCallback | None = None,
) -> ScanSummary:
    """Scan ``targets``; ``decide`` may change a report's verdicts (policy, exclusions) after
    it is cached as found and before it is counted and handed to ``on_report``."""
    summary = ScanSummary()
    started = time.monotonic()
    jobs = options.effective_jobs()
    inflight: dict[Future[list[Scanned]], list[FileEntry]] = {}
    pending: list[FileEntry] = []
    pending_bytes = 0

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
        done, _ = wait(inflight, return_when=FIRST_COMPLETED)
        for fut in done:
            entries = inflight.pop(fut)
            try:
                results = fut.result()
            except Exception as exc:  # _scan_chunk catches per file; this is a last guard
                results = [(e, _internal_error(e, exc)) for e in entries]
            for entry, report in results:
                deliver(report, entry)

    def submit() -> None:
        nonlocal pending, pending_bytes
        if pending:
            inflight[pool.submit(_scan_chunk, scanner, pending, cancel)] = pending
            pending, pending_bytes = [], 0
            if len(inflight) >= jobs * 2:
                drain()

    items = walk(
        targets,
        exclude=Exclusions(options.exclude),
        follow_symlinks=options.follow_symlinks,
        one_file_system=options.one_file_system,
    )
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="aegis-scan") as pool:
        try:
            for batch in _batches(items, _LOOKAHEAD):
                if cancel is not None and cancel.is_set():
                    summary.cancelled = True
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
                    # Files go to the workers in small chunks: one hand-off per file cost
                    # about a tenth of the CPU of a scan (thread wake-ups, futures).
                    pending.append(item)
                    pending_bytes += item.st.st_size
                    if len(pending) >= _CHUNK_FILES or pending_bytes >= _CHUNK_BYTES:
                        submit()
                submit()
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                for fut in list(inflight):
                    if fut.cancel():
                        inflight.pop(fut)
            while inflight:
                drain()
        finally:
            if cache is not None:
                cache.flush()
    summary.seconds = time.monotonic() - started
    return summary
