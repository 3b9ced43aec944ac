"""The monitor's one event queue and the one thread that drains it (``aegis-dispatch``).

Every monitor thread puts items here: ready events, scan reports of the on-access scanner
and process findings. The dispatcher turns reports and findings into typed events through
the report handler (the outcome service by default: decide, act, record) and the decision
engine's :func:`~aegis_engine.decision.process_verdict`, then calls the subscribers.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ..decision import process_verdict
from ..results import FileReport, Verdict
from .events import DetectionEvent, ErrorEvent, MonitorEvent, ProcessEvent, StatusEvent
from .handlers import ReportHandler
from .processes import ProcessFinding

__all__ = ["Dispatcher", "Subscriber"]

log = logging.getLogger(__name__)

Subscriber = Callable[[MonitorEvent], None]


@dataclass(frozen=True)
class ScannedFile:
    """A report of the on-access scanner, waiting for the handler."""

    report: FileReport
    source: str


class _Stop:
    pass


Item = MonitorEvent | ScannedFile | ProcessFinding | _Stop


class Dispatcher:
    """The bounded event queue, its consumer thread and the subscribers."""

    def __init__(self, handle: ReportHandler, *, queue_size: int, put_timeout: float) -> None:
        self._handle = handle
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=queue_size)
        self._put_timeout = put_timeout
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._dropped = 0
        self._closed = False
        self.thread: threading.Thread | None = None

    # -- any thread ----------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, on the dispatcher thread. Returns a
        function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def put(self, item: MonitorEvent | ScannedFile | ProcessFinding) -> None:
        if self._closed:
            return
        try:
            self._queue.put(item, timeout=self._put_timeout)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            log.warning("monitor: event queue full, an event was dropped")

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="aegis-dispatch", daemon=False)
        self.thread.start()

    def close(self) -> None:
        """Take no more items (the monitor stopped)."""
        self._closed = True

    def finish(self, last: StatusEvent, timeout: float) -> None:
        """Deliver ``last`` after everything queued, then end the thread and join it."""
        self._closed = True
        if self.thread is None:
            return
        self._queue.put(last)
        self._queue.put(_Stop())
        self.thread.join(timeout)

    # -- the dispatcher thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            try:
                event = self._to_event(item)
            except Exception as exc:  # the handler failed: say so, go on
                log.exception("monitor: handling an event failed")
                event = ErrorEvent(code="action-failed", message=f"handling failed: {exc}")
            if event is None:
                continue
            self._deliver(event)
            if self._dropped:
                with self._lock:
                    n, self._dropped = self._dropped, 0
                self._deliver(
                    ErrorEvent(
                        code="events-dropped",
                        message=f"{n} event(s) were dropped: the event queue stayed full "
                        "(a subscriber is too slow)",
                    )
                )

    def _deliver(self, event: MonitorEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for cb in subscribers:
            try:
                cb(event)
            except Exception:
                log.exception("monitor: a subscriber failed")

    def _to_event(self, item: Item) -> MonitorEvent | None:
        if isinstance(item, MonitorEvent):
            return item
        if isinstance(item, ScannedFile):
            return self._detection(item.report, item.source)
        if isinstance(item, ProcessFinding):
            return self._process_event(item)
        return None

    def _detection(self, report: FileReport, source: str) -> DetectionEvent | None:
        result = dict(self._handle(report))
        verdict = str(result.pop("verdict", report.verdict.value))
        if verdict == Verdict.CLEAN.value:
            return None  # e.g. excluded by the allowlist
        return DetectionEvent(
            path=report.path,
            verdict=verdict,
            action=str(result.pop("action", "report")),
            source=source,
            detections=tuple(result.pop("detections", ())),
            sha256=report.sha256,
            explanation=tuple(result.pop("explanation", ())),
            outcome=result.pop("outcome", None),
            details=result,
        )

    def _process_event(self, f: ProcessFinding) -> ProcessEvent | None:
        facts = f.facts
        action = "report"
        explanation: list[str] = [h.explanation for h in f.hits]
        detections: tuple[str, ...] = ()
        file_verdict: Verdict | None = None
        if f.report is not None and f.report.verdict.is_threat:
            result = dict(self._handle(f.report))
            file_verdict = Verdict(str(result.get("verdict", f.report.verdict.value)))
            action = str(result.get("action", action))
            detections = tuple(result.get("detections", ()))
            explanation.extend(result.get("explanation", ()))
            if result.get("outcome"):
                explanation.append(f"Outcome: {result['outcome']}")
        verdict = process_verdict((h.severity for h in f.hits), file_verdict)
        if verdict is Verdict.CLEAN:
            return None  # e.g. its executable is allowlisted and it broke no rule
        return ProcessEvent(
            pid=facts.pid,
            name=facts.name,
            exe=facts.exe,
            verdict=verdict.value,
            action=action,
            rules=f.hits,
            ppid=facts.ppid,
            parent=facts.parent_name,
            user=facts.user,
            sha256=facts.sha256,
            detections=detections,
            explanation=tuple(explanation),
        )
