"""Real-time protection in the tray app: the engine's Monitor, started, paused and stopped
in worker ops, with detections handed to the GUI instead of acted on at once.

The monitor's seam to the outcome service is its ``handle(report)`` function (see
``aegis_engine.monitor.handlers``). :class:`PromptingHandler` has the engine's outcome
service decide and record the detection, and hands it to the GUI, which asks the user (the
policy's default applies when nobody answers); the event says ``action = ask`` meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from aegis_engine import Engine, FileReport
from aegis_engine.monitor.handlers import response_fields
from aegis_engine.response import Mode

from .bridge import EngineBridge
from .detection import Detection
from .ops import OpRunner

log = logging.getLogger(__name__)


class ProtectionClosed(Exception):
    """A monitor was asked to start after shutdown() (not an error to show)."""


class MonitorLike(Protocol):
    """What the GUI uses of ``aegis_engine.monitor.Monitor``."""

    watch: list[str]

    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> None: ...

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]: ...

    def resolve(self, incident: str, choice: str) -> Any: ...


class MonitorFactory(Protocol):
    """Makes the monitor. ``decoys=False``: it plants no decoy files whatever the settings
    say (before the first run's choices are saved)."""

    def __call__(
        self,
        engine: Engine,
        watch: Sequence[str] | None,
        handle: Callable[[FileReport], Mapping[str, Any]],
        *,
        decoys: bool = True,
    ) -> MonitorLike: ...


def default_monitor_factory(
    engine: Engine,
    watch: Sequence[str] | None,
    handle: Callable[[FileReport], Mapping[str, Any]],
    *,
    decoys: bool = True,
) -> MonitorLike:
    from aegis_engine.monitor import Monitor, MonitorOptions

    folders = list(watch) if watch else None
    return Monitor(engine, folders, handle=handle, options=MonitorOptions(canaries=decoys))


def default_folders() -> list[str]:
    from aegis_engine.monitor import default_watch_folders

    return [str(p) for p in default_watch_folders()]


class PromptingHandler:
    """The monitor's report handler in the tray app (runs on the monitor's dispatcher)."""

    def __init__(self, engine: Engine, deliver: Callable[[Detection], None]) -> None:
        self._engine = engine
        self._deliver = deliver

    def __call__(self, report: FileReport) -> Mapping[str, Any]:
        response = self._engine.outcomes.respond(report, mode=Mode.DEFER, client="tray")
        if response.decision.verdict.is_threat:
            self._deliver(Detection(report, response.decision, "real-time"))
        return response_fields(response)


class Status(StrEnum):
    OFF = "off"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    ERROR = "error"


class Protection(QObject):
    """Starts and stops real-time protection; ``changed`` after every state change."""

    changed = Signal()

    def __init__(
        self,
        engine: Engine,
        bridge: EngineBridge,
        runner: OpRunner,
        *,
        factory: MonitorFactory = default_monitor_factory,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._bridge = bridge
        self._runner = runner
        self._factory = factory
        self._monitor: MonitorLike | None = None
        self.status = Status.OFF
        self.error = ""
        self.folders: list[str] = []
        self.paused_until: float | None = None
        """Monotonic seconds when a timed pause ends (None: until resumed)."""
        self._resume_timer = QTimer(self)
        self._resume_timer.setSingleShot(True)
        self._resume_timer.timeout.connect(self.resume)
        self._wanted_folders: list[str] = []
        self._generation = 0
        self._created: list[MonitorLike] = []
        self._created_lock = threading.Lock()
        self._closed = False
        """Set by shutdown(): no monitor starts after it, whatever asks."""
        self.decoys_allowed = True
        """False until the first run's choices are saved: monitors started meanwhile plant
        no decoys (``[realtime] decoys`` still decides once it is True)."""

    @property
    def monitor(self) -> MonitorLike | None:
        return self._monitor

    @property
    def live_monitors(self) -> int:
        """Monitors made and not yet stopped (a pause's stop runs in the background)."""
        with self._created_lock:
            return len(self._created)

    def configure(self, enabled: bool, folders: Sequence[str]) -> None:
        """Apply the settings: (re)start with these folders, or stop."""
        self._wanted_folders = [str(Path(f).expanduser()) for f in folders]
        if not enabled:
            self._stop_async(Status.OFF)
            return
        if self.status is Status.PAUSED:
            return  # applied when the pause ends
        self._restart()

    def _restart(self) -> None:
        if self._closed:
            return
        self._generation += 1
        generation = self._generation
        old, self._monitor = self._monitor, None
        self.status = Status.STARTING
        self.error = ""
        self.changed.emit()
        handler = PromptingHandler(self._engine, self._bridge.on_detection)
        folders = list(self._wanted_folders)
        decoys = self.decoys_allowed

        def start() -> tuple[MonitorLike, list[str]]:
            if old is not None:
                self._stop_and_forget(old)
            with self._created_lock:
                if self._closed:
                    raise ProtectionClosed("Aegis is quitting")
            monitor = self._factory(self._engine, folders or None, handler, decoys=decoys)
            with self._created_lock:
                self._created.append(monitor)
            monitor.subscribe(self._bridge.on_monitor_event)
            monitor.start()
            with self._created_lock:
                closed = self._closed
            if closed:  # shutdown() ran while it started: its threads must not outlive it
                monitor.stop()
                raise ProtectionClosed("Aegis is quitting")
            return monitor, list(monitor.watch)

        def started(result: tuple[MonitorLike, list[str]]) -> None:
            monitor, watched = result
            if generation != self._generation:  # paused or reconfigured meanwhile
                self._runner.run(lambda: self._stop_and_forget(monitor), name="monitor-stop")
                return
            self._monitor = monitor
            self.folders = watched
            self.status = Status.RUNNING
            self.changed.emit()

        def failed(exc: BaseException) -> None:
            if generation != self._generation or isinstance(exc, ProtectionClosed):
                return
            log.warning("real-time protection could not start: %s", exc)
            self.status = Status.ERROR
            self.error = str(exc) or type(exc).__name__
            self.changed.emit()

        self._runner.run(start, success=started, failure=failed, name="monitor-start")

    def _stop_async(self, status: Status) -> None:
        self._generation += 1
        old, self._monitor = self._monitor, None
        self.status = status
        self.changed.emit()
        if old is not None:
            self._runner.run(lambda: self._stop_and_forget(old), name="monitor-stop")

    def _stop_and_forget(self, monitor: MonitorLike) -> None:  # worker thread
        monitor.stop()
        with self._created_lock:
            if monitor in self._created:
                self._created.remove(monitor)

    def pause(self, seconds: int | None) -> None:
        """Stop real-time protection for ``seconds`` (None: until resumed or restarted)."""
        if self.status is Status.OFF:
            return
        self._resume_timer.stop()
        if seconds is not None:
            self._resume_timer.start(seconds * 1000)
        self._stop_async(Status.PAUSED)

    def resume(self) -> None:
        self._resume_timer.stop()
        if self.status is Status.PAUSED:
            self._restart()

    def pause_remaining_ms(self) -> int | None:
        return self._resume_timer.remainingTime() if self._resume_timer.isActive() else None

    def resolve(
        self,
        incident: str,
        choice: str,
        done: Callable[[object], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        """Kill or resume the processes of a ransomware incident."""
        monitor = self._monitor
        if monitor is None:
            fail(RuntimeError("real-time protection is not running"))
            return
        self._runner.run(lambda: monitor.resolve(incident, choice), success=done, failure=fail)

    def shutdown(self) -> None:
        """Stop every monitor this object made, joining their threads (on quit; call it
        after the runner's ops are done, so that none is still starting)."""
        self._generation += 1
        self._resume_timer.stop()
        self._monitor = None
        with self._created_lock:
            self._closed = True
            created, self._created = self._created, []
        for monitor in created:
            monitor.stop()  # idempotent
        self.status = Status.OFF
