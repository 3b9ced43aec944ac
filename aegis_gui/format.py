"""Small text helpers for windows: sizes, times, paths that are safe to show."""

from __future__ import annotations

import time
from datetime import datetime

from aegis_engine.display import display_path as show_path
from aegis_engine.display import human_bytes

__all__ = ["duration", "human_bytes", "local_time", "show_path"]


def local_time(moment: datetime | float) -> str:
    if isinstance(moment, float | int):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(moment))
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
