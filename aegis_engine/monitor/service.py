"""The Monitor: real-time protection as one object with ``start()``, ``stop()``, ``subscribe()``.

Threads (none is a daemon; ``stop()`` joins every one, in this order)::

    aegis-inotify     reads file events; runs the ransomware shield inline (it suspends at
                      once) and hands files to the on-access scanner's pending table
    aegis-processes   looks at new processes every second, scans their executables
    aegis-onaccess    scans settled files (Engine.scan_file), rescans after overflows
    aegis-shield      sends ransomware alerts (after suspension, with the files touched)
    aegis-dispatch    the one consumer of the one event queue: runs the report handler
                      (decision engine, quarantine) and calls the subscribers

Every monitor thread feeds the one bounded event queue; the dispatcher drains it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..engine import Engine
from ..errors import MonitorError
from .behaviour import BehaviourRules, LiveBehaviourRules
from .canary import CanarySet
from .dispatch import Dispatcher, ScannedFile, Subscriber
from .events import (
    ErrorEvent,
    MonitorEvent,
    RansomwareEvent,
    StatusEvent,
)
from .fsevents import FsEvent, FsKind
from .handlers import OutcomeHandler, ReportHandler
from .inotify import AddResult, available, max_user_watches
from .onaccess import OnAccessScanner
from .options import FolderKinds, MonitorOptions, default_protected_folders, default_watch_folders
from .processes import ProcessMonitor
from .ransomware import RansomwareShield
from .scope import Skipper, normalize, outermost
from .watching import EventSource, InotifySource, WatchdogSource

__all__ = ["Monitor", "Subscriber"]

log = logging.getLogger(__name__)


class Monitor:
    """Real-time protection over ``watch`` folders (on-access scanning) and ``protect``
    folders (ransomware shield), plus the process monitor.

    ``watch=None`` means the default folders (Downloads, Desktop, Documents, temp). When
    ``watch`` is given and ``protect`` is not, the watched folders are also protected;
    when neither is given, Documents, Desktop and Pictures are protected.

    ``handle`` is the seam to the decision engine: it gets every non-clean report and returns
    the action taken (see :mod:`.handlers`); by default :class:`OutcomeHandler` over
    ``engine.outcomes``, which quarantines per policy unless ``apply_actions`` is false.
    ``guard`` may refuse to suspend a pid (tests use it as a safety net).
    """

    def __init__(
        self,
        engine: Engine,
        watch: Sequence[str | Path] | None = None,
        *,
        protect: Sequence[str | Path] | None = None,
        options: MonitorOptions | None = None,
        handle: ReportHandler | None = None,
        rules: BehaviourRules | None = None,
        apply_actions: bool = True,
        on_access: bool = True,
        processes: bool = True,
        shield: bool = True,
        scan_existing_processes: bool = True,
        guard: Callable[[int], bool] | None = None,
        folders: FolderKinds | None = None,
    ) -> None:
        self.engine = engine
        self.options = options or MonitorOptions()
        if watch is None:
            self.watch = normalize(default_watch_folders())
            self.protect = normalize(default_protected_folders() if protect is None else protect)
        else:
            self.watch = normalize(watch)
            self.protect = normalize(self.watch if protect is None else protect)
        if not shield:
            self.protect = []
        self._enable_on_access = on_access
        self._enable_processes = processes
        self._scan_existing = scan_existing_processes
        self._guard = guard
        self._folders = folders or FolderKinds.default()
        self._rules = rules
        self._handle: ReportHandler = handle or self._default_handler(apply_actions)
        p = engine.paths
        own = [str(d) for d in (p.config_dir, p.data_dir, p.cache_dir, p.state_dir)]
        self._skip = Skipper(normalize(own), self.options.exclude + self._exclusion_globs())
        self._events = Dispatcher(
            self._handle,
            queue_size=self.options.event_queue_size,
            put_timeout=self.options.event_put_timeout,
        )
        self._state = "new"
        self._state_lock = threading.Lock()
        self._sources: list[EventSource] = []
        self.on_access: OnAccessScanner | None = None
        self.shield: RansomwareShield | None = None
        self.processes: ProcessMonitor | None = None
        self.canaries: CanarySet | None = None
        self.backend = ""
        self.watch_results: list[AddResult] = []

    # -- configuration -------------------------------------------------------------------------
    def _default_handler(self, apply_actions: bool) -> ReportHandler:
        """The engine's outcome service; the quarantine and the history (about 10 MB of
        imports) are opened at the first non-clean file."""
        from ..response import Mode

        return OutcomeHandler(
            self.engine.outcomes,
            mode=Mode.ACT if apply_actions else Mode.REPORT,
            before_action=self._before_action,
        )

    def _exclusion_globs(self) -> tuple[str, ...]:
        return self.engine.settings.exclusions.paths

    def _decoys(self) -> bool:
        """Plant the shield's decoy files: the monitor's option and ``[realtime] decoys``."""
        return self.options.canaries and self.engine.settings.realtime.decoys

    def _before_action(self, path: str) -> None:
        if self.shield is not None:
            self.shield.expect_own_change(path)

    @property
    def roots(self) -> list[str]:
        return outermost(self.watch + self.protect)

    # -- subscribers ---------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, on the dispatcher thread. Returns a
        function that unsubscribes."""
        return self._events.subscribe(callback)

    def emit(self, event: MonitorEvent) -> None:
        """Queue an event for the subscribers (any thread)."""
        self._events.put(event)

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self) -> None:
        with self._state_lock:
            if self._state != "new":
                raise MonitorError(f"the monitor cannot start: it is {self._state}")
            self._state = "starting"
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        with self._state_lock:
            self._state = "running"

    def _start(self) -> None:
        opt = self.options
        self._warm_up()
        self._events.start()
        skip = self._skip
        if self.protect:
            self.canaries = CanarySet(self.engine.paths.state_dir / "canaries.json")
            self.shield = RansomwareShield(
                self.protect,
                options=opt,
                emit=self.emit,
                canaries=self.canaries if self._decoys() else None,
                guard=self._guard,
            )
            self.shield.plant_canaries()
            self.shield.start()
        if self._enable_on_access and self.watch:
            canaries = self.canaries

            journal = self.engine.paths.quarantine_dir / "journal"

            def skip_scan(path: str) -> bool:
                if canaries is not None and (
                    canaries.is_canary(path) or canaries.is_own_temp(path)
                ):
                    return True
                if skip(path):
                    return True
                if os.path.basename(path).startswith(".aegis-restore-"):
                    # the vault's temp file of a restore in flight? (imports the vault: only
                    # for this name)
                    from ..quarantine.journal import restore_in_flight

                    return restore_in_flight(journal, path)
                return False

            self.on_access = OnAccessScanner(
                self.engine.scan_file,
                options=opt,
                on_report=lambda r, s: self._events.put(ScannedFile(r, s)),
                emit=self.emit,
                skip=skip_scan,
            )
            self.on_access.start()
        if self.roots and (self.on_access is not None or self.shield is not None):
            self._start_sources()
        if self._enable_processes:
            rules = self._rules or LiveBehaviourRules(self.engine.paths)
            self.processes = ProcessMonitor(
                self.engine.scan_file,
                rules,
                self._folders,
                opt,
                on_finding=self._events.put,
                scan_existing=self._scan_existing,
            )
            self.processes.start()
        self.emit(
            StatusEvent(
                state="started",
                message="real-time protection is on",
                details={
                    "backend": self.backend,
                    "watched": self.watch,
                    "protected": self.protect,
                    "folders_watched": sum(r.watched for r in self.watch_results),
                    "canaries": len(self.canaries.paths) if self.canaries else 0,
                    "canaries_skipped": dict(self.canaries.skipped) if self.canaries else {},
                    "process_monitor": self.processes is not None,
                },
            )
        )

    def _warm_up(self) -> None:
        """Build the detectors and compile the rules now: the first scan otherwise does it,
        holding the interpreter for 25-150 ms just when a burst of events needs it."""
        fd, name = tempfile.mkstemp(prefix="aegis-warmup-", suffix=".txt")
        try:
            os.write(fd, b"Aegis real-time protection warm-up.\n")
            os.close(fd)
            self.engine.scan_file(name)
        except Exception as exc:  # a broken rule set shows up again on real files
            log.warning("monitor: warm-up scan failed: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    def _backend(self) -> str:
        wanted = self.options.backend
        if wanted == "auto":
            return "inotify" if available() else "watchdog"
        if wanted == "inotify" and not available():
            raise MonitorError("the inotify backend is not available on this system")
        return wanted

    def _start_sources(self) -> None:
        opt = self.options
        self.backend = self._backend()
        roots = self.roots
        source: EventSource
        if self.backend == "inotify":
            source = InotifySource(
                roots,
                skip=self._skip,
                on_problem=self._problem,
                root_check_interval=opt.root_check_interval,
            )
        else:
            source = WatchdogSource(
                roots,
                skip=self._skip,
                on_problem=self._problem,
                polling=self.backend == "polling",
                polling_interval=opt.polling_interval,
                root_check_interval=opt.root_check_interval,
            )
        self._sources.append(source)
        self.watch_results = source.start(self._route)
        limited = [r for r in self.watch_results if r.limit_reached]
        if limited:
            self._fall_back(limited)

    def _fall_back(self, limited: Sequence[AddResult]) -> None:
        opt = self.options
        limit = max_user_watches()
        for r in limited:
            self.emit(
                ErrorEvent(
                    code="inotify-limit",
                    path=r.root,
                    message=(
                        f"inotify watch limit reached (fs.inotify.max_user_watches={limit}): "
                        f"{r.unwatched} of {r.watched + r.unwatched} folders under this root "
                        "cannot be watched in real time. Falling back to polling it every "
                        f"{opt.polling_interval:g} s (changes are seen late; the ransomware "
                        "shield covers only the folders watched in real time). To fix it: "
                        "sudo sysctl fs.inotify.max_user_watches=524288 (and put "
                        "fs.inotify.max_user_watches=524288 in /etc/sysctl.d/ to keep it)."
                    ),
                )
            )
        poll = WatchdogSource(
            [r.root for r in limited],
            skip=self._skip,
            on_problem=self._problem,
            polling=True,
            polling_interval=opt.polling_interval,
            root_check_interval=opt.root_check_interval,
        )
        self._sources.append(poll)
        poll.start(self._route_polled)
        self.emit(
            StatusEvent(
                state="fallback",
                message="polling folders that inotify cannot watch",
                details={"polled": [r.root for r in limited]},
            )
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every thread and join it; remove unchanged canaries. Idempotent."""
        with self._state_lock:
            if self._state in ("stopped", "stopping"):
                return
            was = self._state
            self._state = "stopping"
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        for src in self._sources:
            src.stop()
        for src in self._sources:
            src.join(left())
        if self.processes is not None:
            self.processes.stop()
            self.processes.join(left())
        if self.on_access is not None:
            self.on_access.stop()
            self.on_access.join(left())
        if self.shield is not None:
            self.shield.stop()
            self.shield.join(left())
        kept: list[str] = []
        if self.canaries is not None:
            kept = self.canaries.remove_all()
        if self._events.thread is not None and was != "new":
            details: dict[str, Any] = self.stats()
            if kept:
                details["canaries_changed"] = kept
            if self.shield is not None:
                details["still_suspended"] = [
                    p.pid for i in self.shield.pending() for p in i.processes
                    if p.outcome == "suspended"
                ]  # fmt: skip
            last = StatusEvent(state="stopped", message="stopped", details=details)
            self._events.finish(last, left())
        self._events.close()
        with self._state_lock:
            self._state = "stopped"

    def __enter__(self) -> Monitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        out: list[threading.Thread] = []
        for src in self._sources:
            out.extend(src.threads)
        for part in (self.processes, self.on_access, self.shield):
            if part is not None:
                out.extend(part.threads)
        if self._events.thread is not None:
            out.append(self._events.thread)
        return out

    # -- routing (source threads) --------------------------------------------------------------
    def _route(self, batch: Sequence[FsEvent]) -> None:
        if self.shield is not None:
            self.shield.observe(batch)
        if self.on_access is not None:
            self.on_access.observe(batch)
        for ev in batch:
            if ev.kind is FsKind.ROOT_GONE:
                self.emit(
                    ErrorEvent(
                        code="watch-lost",
                        path=ev.path,
                        message="this watched folder was deleted or moved away; it will be "
                        "watched again as soon as it exists again",
                    )
                )
            elif ev.kind is FsKind.ROOT_BACK:
                self.emit(
                    StatusEvent(state="watch-restored", path=ev.path, message="watched again")
                )

    def _route_polled(self, batch: Sequence[FsEvent]) -> None:
        if self.on_access is not None:
            self.on_access.observe(batch)

    def _problem(self, code: str, message: str, path: str | None) -> None:
        self.emit(ErrorEvent(code=code, message=message, path=path))

    # -- the user's choices and numbers ----------------------------------------------------------
    def resolve(self, incident: str, choice: str) -> RansomwareEvent:
        """Kill or resume the processes the shield suspended in ``incident``."""
        if self.shield is None:
            raise MonitorError("the ransomware shield is not running")
        try:
            return self.shield.resolve(incident, choice)
        except KeyError:
            raise MonitorError(f"no ransomware incident {incident!r}") from None

    def stats(self) -> dict[str, Any]:
        from dataclasses import asdict  # every counter of the stats, by its field name

        out: dict[str, Any] = {"backend": self.backend}
        if self.on_access is not None:
            counts = asdict(self.on_access.stats)
            counts["max_pending"] = counts.pop("max_pending_seen")
            out["on_access"] = {**counts, "pending": self.on_access.pending}
        if self.processes is not None:
            out["processes"] = asdict(self.processes.stats)
        if self.shield is not None:
            out["shield"] = {
                "triggers": self.shield.triggers,
                "incidents": len(self.shield.incidents),
            }
        return out
