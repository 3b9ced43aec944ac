"""Opening and closing each window many times leaves memory flat (issue 16 item 4: the
Settings window kept about 1.9 MB per open/close). RSS after gc and malloc_trim, with a
generous bound: a leak of the old size (30 x 1.9 MB) fails it, allocator noise does not."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication, QWidget

from aegis_gui import memory
from aegis_gui.controller import TrayApp

ROUNDS = 30
BOUND = 10 << 20


def _rss() -> int:
    for _ in range(3):
        QApplication.processEvents()
    memory.trim()
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize("name", ["settings", "alerts", "quarantine", "status", "scan"])
def test_open_close_each_window_keeps_memory_flat(qtbot: Any, tray_app: TrayApp, name: str) -> None:
    openers: dict[str, Callable[[], QWidget]] = {
        "settings": tray_app.show_settings,
        "alerts": tray_app.show_alerts,
        "quarantine": tray_app.show_quarantine,
        "status": tray_app.show_status,
        "scan": tray_app.show_scan,
    }
    show = openers[name]

    def cycle() -> None:
        w = show()
        qtbot.waitUntil(w.isVisible, timeout=60_000)
        w.close()
        qtbot.waitUntil(lambda: not w.isVisible(), timeout=60_000)

    for _ in range(3):  # warm up: first-use caches, fonts, the thread pool
        cycle()
    tray_app.runner.wait()
    before = _rss()
    for _ in range(ROUNDS):
        cycle()
    tray_app.runner.wait()
    grown = _rss() - before
    assert grown < BOUND, f"{name}: +{grown / 2**20:.1f} MB after {ROUNDS} opens"
