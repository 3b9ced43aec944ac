"""Scheduled scans: when the next one is due (pure logic, no Qt, no clock of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Schedule:
    enabled: bool = False
    frequency: str = "weekly"
    """``daily`` or ``weekly``."""
    weekday: str = "sunday"
    time: str = "12:00"
    """Local time, ``HH:MM``."""
    kind: str = "quick"
    """``quick`` (the usual download and document folders) or ``full`` (the home folder)."""

    def describe(self) -> str:
        if not self.enabled:
            return "No scheduled scan"
        when = "Every day" if self.frequency == "daily" else f"Every {self.weekday.title()}"
        return f"{when} at {self.time} ({self.kind} scan)"


def next_run(schedule: Schedule, now: datetime) -> datetime | None:
    """The first moment strictly after ``now`` (a local, naive or aware datetime) when the
    schedule is due; None when it is off."""
    if not schedule.enabled:
        return None
    hour, minute = (int(x) for x in schedule.time.split(":"))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if schedule.frequency == "daily":
        if candidate <= now:
            candidate += timedelta(days=1)
        return candidate
    target = WEEKDAYS.index(schedule.weekday)
    days = (target - now.weekday()) % 7
    candidate += timedelta(days=days)
    if candidate <= now:
        candidate += timedelta(days=7)
    return candidate
