"""Opening and closing each window many times leaves memory flat (issue 16 item 4: the
Settings window kept about 1.9 MB per open/close). RSS after gc and malloc_trim, with a
generous bound: a leak of the old size (30 x 1.9 MB) fails it, allocator noise does not."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication, QWidget

from aegis_engine import AegisPaths
from aegis_gui import memory
from aegis_gui.controller import Options, TrayApp
from tests.e2e_gui.helpers import MemoryKeyring, quiet_monitor

ROUNDS = 30
BOUND = 10 << 20


@pytest.fixture
def app(qtbot: Any, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring) -> Iterator[TrayApp]:
    tray = TrayApp(
        aegis_paths,
        Options(tray=False, first_run=False, protection=False, monitor_factory=quiet_monitor),
    )
    tray.start()
    yield tray
    tray.shutdown()


def _rss() -> int:
    for _ in range(3):
        QApplication.processEvents()
    memory.trim()
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize("name", ["settings", "alerts", "quarantine", "status", "scan"])
def test_open_close_each_window_keeps_memory_flat(qtbot: Any, app: TrayApp, name: str) -> None:
    openers: dict[str, Callable[[], QWidget]] = {
        "settings": app.show_settings,
        "alerts": app.show_alerts,
        "quarantine": app.show_quarantine,
        "status": app.show_status,
        "scan": app.show_scan,
    }
    show = openers[name]

    def cycle() -> None:
        w = show()
        qtbot.waitUntil(w.isVisible, timeout=60_000)
        w.close()
        qtbot.waitUntil(lambda: not w.isVisible(), timeout=60_000)

    for _ in range(3):  # warm up: first-use caches, fonts, the thread pool
        cycle()
    app.runner.wait()
    before = _rss()
    for _ in range(ROUNDS):
        cycle()
    app.runner.wait()
    grown = _rss() - before
    assert grown < BOUND, f"{name}: +{grown / 2**20:.1f} MB after {ROUNDS} opens"
