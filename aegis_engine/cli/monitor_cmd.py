"""``aegis monitor``: headless real-time protection until Ctrl+C or SIGTERM.

On-access scanning of the given folders (default: Downloads, Desktop, Documents, temp), the
ransomware shield on the same folders (default: Documents, Desktop, Pictures) and the
process monitor. ``--json`` prints one JSON object per event and line, flushed at once.

When the shield suspends a process, type ``kill R1`` or ``resume R1`` (the incident id) and
Enter; with ``--json`` the line may also be ``{"command": "kill", "incident": "R1"}``.
Processes still suspended when the monitor stops stay suspended (the alert says how to
resume them with ``kill -CONT``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .. import crashlog
from ..engine import Engine
from ..errors import AegisError, ConfigError
from ..monitor import (
    DetectionEvent,
    ErrorEvent,
    Monitor,
    MonitorEvent,
    MonitorOptions,
    ProcessEvent,
    RansomwareEvent,
    StatusEvent,
)
from .output import display_path

_PATH_KEYS = ("path", "exe", "file")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "monitor",
        help="real-time protection until Ctrl+C",
        description="Real-time protection: on-access scanning, ransomware shield and process "
        "monitor, until Ctrl+C or SIGTERM. The given folders are watched and protected.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="folders to watch and protect (default: Downloads, Desktop, Documents, temp; "
        "protected: Documents, Desktop, Pictures)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per line per event")
    p.add_argument(
        "--protect",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="protect these folders with the ransomware shield instead (repeatable)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="ignore paths or names matching this glob (repeatable)",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="only report: do not quarantine, even where the policy says to",
    )
    p.add_argument("--no-processes", action="store_true", help="do not monitor processes")
    p.add_argument("--no-shield", action="store_true", help="no ransomware shield")
    p.add_argument("--no-canaries", action="store_true", help="plant no decoy files")
    p.add_argument(
        "--backend",
        choices=("auto", "inotify", "watchdog", "polling"),
        default="auto",
        help="how file events are received (default: inotify on Linux, else watchdog)",
    )
    p.set_defaults(run=run)


def _printable(d: dict[str, Any]) -> dict[str, Any]:
    for key in _PATH_KEYS:
        if isinstance(d.get(key), str):
            d[key] = display_path(d[key])
    if isinstance(d.get("files"), list):
        d["files"] = [display_path(f) for f in d["files"]]
    procs = d.get("processes")
    for proc in procs if isinstance(procs, list) else []:
        if isinstance(proc, dict) and isinstance(proc.get("exe"), str):
            proc["exe"] = display_path(proc["exe"])
    return d


class _Printer:
    """Writes events; one lock so lines from different threads never interleave."""

    def __init__(self, out: TextIO, err: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.err = err
        self.as_json = as_json
        self.lock = threading.Lock()

    def __call__(self, event: MonitorEvent) -> None:
        with self.lock:
            try:
                if self.as_json:
                    self.out.write(json.dumps(_printable(event.to_dict())) + "\n")
                    self.out.flush()
                else:
                    self._human(event)
            except (BrokenPipeError, ValueError):
                pass  # the reader went away; the monitor keeps protecting

    def line(self, text: str) -> None:
        with self.lock:
            self.err.write(text + "\n")
            self.err.flush()

    def _human(self, event: MonitorEvent) -> None:
        out, err = self.out, self.err
        if isinstance(event, DetectionEvent):
            names = ", ".join(event.detections) or "-"
            out.write(
                f"{event.verdict.upper():<11} {display_path(event.path)}  [{names}]  "
                f"action: {event.action}" + (f" ({event.outcome})" if event.outcome else "") + "\n"
            )
            out.flush()
        elif isinstance(event, ProcessEvent):
            out.write(
                f"PROCESS     {event.verdict} pid {event.pid} {event.name} "
                f"({display_path(event.exe or '?')})\n"
            )
            for line in event.explanation:
                out.write(f"{'':12}{line}\n")
            out.flush()
        elif isinstance(event, RansomwareEvent):
            out.write(f"RANSOMWARE  {event.action}: {event.explanation}\n")
            for p in event.processes:
                out.write(
                    f"{'':12}pid {p.pid} {p.name or '?'} ({display_path(p.exe or '?')}): "
                    f"{p.outcome}\n"
                )
            out.write(f"{'':12}{event.files_total} file(s) touched:\n")
            for f in event.files[:50]:
                out.write(f"{'':14}{display_path(f)}\n")
            if event.files_total > 50:
                out.write(f"{'':14}... and {event.files_total - 50} more\n")
            if event.action == "suspended":
                out.write(
                    f"{'':12}Type 'kill {event.incident}' or 'resume {event.incident}' and Enter.\n"
                )
            out.flush()
        elif isinstance(event, ErrorEvent):
            where = f" {display_path(event.path)}:" if event.path else ""
            err.write(f"aegis: {event.code}:{where} {event.message}\n")
            err.flush()
        elif isinstance(event, StatusEvent):
            self._status(event)

    def _status(self, event: StatusEvent) -> None:
        err = self.err
        if event.state == "started":
            d = event.details
            err.write(
                f"aegis: monitoring {len(d.get('watched', []))} folder(s) "
                f"({d.get('folders_watched', 0)} watched with {d.get('backend') or '-'}), "
                f"protecting {len(d.get('protected', []))}, "
                f"processes {'on' if d.get('process_monitor') else 'off'}. Ctrl+C stops.\n"
            )
            for folder, why in dict(d.get("canaries_skipped", {})).items():
                err.write(f"aegis: no canary in {display_path(folder)}: {why}\n")
        elif event.state == "stopped":
            suspended = event.details.get("still_suspended") or []
            if suspended:
                pids = " ".join(str(p) for p in suspended)
                err.write(
                    f"aegis: still suspended: {pids} (resume: kill -CONT {pids}; "
                    f"end: kill -KILL {pids})\n"
                )
            err.write("aegis: stopped\n")
        else:
            where = f" {display_path(event.path)}" if event.path else ""
            err.write(f"aegis: {event.state}{where}: {event.message}\n")
        err.flush()


def _parse_command(line: str) -> tuple[str, str] | None:
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if isinstance(data, dict):
            cmd, inc = data.get("command"), data.get("incident")
            if isinstance(cmd, str) and isinstance(inc, str):
                return cmd, inc
        return None
    parts = line.split()
    if len(parts) == 2:
        return parts[0].lower(), parts[1]
    return None


def _command_reader(
    stream: TextIO, stop: threading.Event, act: Callable[[str, str], None]
) -> threading.Thread | None:
    """Read kill/resume commands from stdin without blocking shutdown (POSIX select)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    if os.name == "nt":  # pragma: no cover - no select() on Windows pipes
        return None

    def run() -> None:
        buf = b""
        while not stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                return
            if not chunk:
                return  # end of input: no more commands
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                cmd = _parse_command(raw.decode("utf-8", "replace"))
                if cmd is not None:
                    act(*cmd)

    thread = threading.Thread(target=run, name="aegis-commands", daemon=False)
    thread.start()
    return thread


def run(args: argparse.Namespace) -> int:
    for p in [*args.paths, *args.protect]:
        if not Path(p).is_dir():
            raise ConfigError(f"not a folder: {p}")
    from ..privacy.crash import install_excepthook

    install_excepthook("monitor")
    printer = _Printer(sys.stdout, sys.stderr, as_json=args.json)

    def warn(message: str) -> None:
        printer(ErrorEvent(code="warning", message=message))

    engine = Engine(on_warning=warn)
    options = MonitorOptions(
        exclude=tuple(args.exclude), canaries=not args.no_canaries, backend=args.backend
    )
    monitor = Monitor(
        engine,
        args.paths or None,
        protect=args.protect or None,
        options=options,
        apply_actions=not args.report_only,
        processes=not args.no_processes,
        shield=not args.no_shield,
    )
    monitor.subscribe(printer)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def act(command: str, incident: str) -> None:
        if command not in ("kill", "resume"):
            printer.line(f"aegis: unknown command {command!r} (use kill or resume)")
            return
        try:
            monitor.resolve(incident, command)
        except AegisError as exc:
            printer.line(f"aegis: {exc}")

    def internal_error(message: str) -> None:
        printer(ErrorEvent(code="internal-error", message=message))

    from ..privacy.crash import handle_crash
    from ..updates.scheduler import UpdateScheduler

    def update_done(result: Any) -> None:
        if result.result != "current":
            printer.line(f"aegis: update {result.result}: {result.reason}")

    updates = UpdateScheduler(engine.paths, on_result=update_done)
    reader: threading.Thread | None = None
    from ..privacy.schedule import SendTimer

    sending = SendTimer(engine.paths, warn)  # only allowed purposes with an endpoint
    try:
        with crashlog.reporting(
            internal_error,
            command="monitor",
            write=lambda exc: handle_crash(engine.paths, exc, "monitor"),  # queued with consent
        ):
            monitor.start()
            updates.start()
            sending.start()
            reader = _command_reader(sys.stdin, stop, act)
            while not stop.wait(0.5):
                pass
    finally:
        stop.set()
        updates.stop()
        sending.stop()
        monitor.stop()
        if reader is not None:
            reader.join(2.0)
        engine.close()
        for s, handler in old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(s, handler)
    return 0
