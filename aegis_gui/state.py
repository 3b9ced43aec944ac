"""The tray's state and tooltip from what is going on (pure logic)."""

from __future__ import annotations

from dataclasses import dataclass

from .format import duration
from .icons import TrayState
from .protection import Status


@dataclass(frozen=True)
class Situation:
    protection: Status
    folders: int = 0
    open_alerts: int = 0
    updating: bool = False
    scanning: str = ""
    """e.g. ``Quick scan: 1,204 files`` while a scan runs."""
    pause_left_ms: int | None = None
    error: str = ""
    note: str = ""


def describe(s: Situation) -> tuple[TrayState, str]:
    """The icon state and the detail line (tooltip, status window)."""
    lines: list[str] = []
    if s.protection is Status.RUNNING:
        folders = "1 folder" if s.folders == 1 else f"{s.folders} folders"
        lines.append(f"Real-time protection is on ({folders} watched).")
    elif s.protection is Status.STARTING:
        lines.append("Starting real-time protection…")
    elif s.protection is Status.PAUSED:
        if s.pause_left_ms is None:
            lines.append("Real-time protection is paused until Aegis restarts.")
        else:
            lines.append(f"Real-time protection is paused for {duration(s.pause_left_ms / 1000)}.")
    elif s.protection is Status.OFF:
        lines.append("Real-time protection is turned off in Settings.")
    else:
        lines.append(f"Real-time protection could not start: {s.error}")
    if s.open_alerts:
        waiting = "1 file waits" if s.open_alerts == 1 else f"{s.open_alerts} files wait"
        lines.insert(0, f"{waiting} for your decision.")
    if s.scanning:
        lines.append(s.scanning)
    if s.note:
        lines.append(s.note)
    if s.open_alerts:
        state = TrayState.THREAT
    elif s.protection is Status.ERROR:
        state = TrayState.ERROR
    elif s.updating or s.protection is Status.STARTING:
        state = TrayState.UPDATING
        if s.updating:
            lines.append("Checking for updates…")
    elif s.protection in (Status.PAUSED, Status.OFF):
        state = TrayState.PAUSED
    else:
        state = TrayState.PROTECTED
    return state, "\n".join(lines)
