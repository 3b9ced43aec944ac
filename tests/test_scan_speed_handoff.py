"""Scan workers send their results a few files at a time (one message and one wake-up of
the scan's process per many small files), yet say at once which file they are on when one
is slow, so a worker stopped at the time limit blames the right file."""

from __future__ import annotations

import threading
import time

from aegis_engine.scanning import worker_main
from aegis_engine.scanning.worker_main import Results


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[object, ...]] = []
        self.arrived = threading.Condition()

    def __call__(self, message: tuple[object, ...]) -> None:
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)


def test_results_leave_in_order_and_fewer_messages_than_files() -> None:
    sent = Sent()
    results = Results(sent)
    results.begin()
    for i in range(2000):
        results.file_started()
        results.add(("ok", f"{i:064x}", i))
    results.end()
    got = [r for m in sent.messages for r in m[1]]  # type: ignore[attr-defined]
    assert got == [("ok", f"{i:064x}", i) for i in range(2000)]
    assert all(m[0] == "batch" and m[2] is False for m in sent.messages)
    assert len(sent.messages) < 2000


def test_a_slow_file_sends_the_results_before_it_marked_busy(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(worker_main, "FLUSH_SECONDS", 3600.0)  # nothing sent on its own
    sent = Sent()
    results = Results(sent)
    results.begin()
    for i in range(3):
        results.file_started()
        results.add(("ok", str(i), i))
    results.file_started()  # the slow one: never finished here
    sent.wait_for(1)
    assert sent.messages[0] == ("batch", [("ok", "0", 0), ("ok", "1", 1), ("ok", "2", 2)], True)
    time.sleep(3 * worker_main.SLOW_FILE_SECONDS)
    assert len(sent.messages) == 1  # said once per slow file
    results.add(("report", "slow"))
    results.end()
    assert sent.messages[1] == ("batch", [("report", "slow")], False)
