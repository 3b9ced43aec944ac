"""Scan workers send their results a few files at a time (one message and one wake-up of
the scan's process per many small files), yet say at once which file they are on when one
is slow, so a worker stopped at the time limit blames the right file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import EICAR
from helpers import hostile_detectors as hostile

from aegis_engine import Engine
from aegis_engine.paths import AegisPaths
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


def test_results_leave_in_order_and_fewer_messages_than_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_main, "FLUSH_SECONDS", 0.05)  # a few at a time (not the default)
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


def test_a_slow_file_sends_the_results_before_it_marked_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_main, "FLUSH_SECONDS", 3600.0)  # nothing sent on its own
    sent = Sent()
    results = Results(sent)
    results.begin()
    for i in range(3):
        results.file_started()
        results.add(("ok", str(i), i))
    results.file_started()  # the slow one: never finished here
    sent.wait_for(1)
    assert sent.messages[0] == ("batch", [("ok", "0", 0), ("ok", "1", 1), ("ok", "2", 2)], True, 0)
    time.sleep(3 * worker_main.SLOW_FILE_SECONDS)
    assert len(sent.messages) == 1  # said once per slow file
    results.add(("report", "slow"))
    results.end()
    assert sent.messages[1] == ("batch", [("report", "slow")], False, 0)


def test_a_long_batch_gives_its_unscanned_files_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_main, "FLUSH_SECONDS", 3600.0)  # nothing sent on its own
    sent = Sent()
    results = Results(sent)
    results.begin()
    results.file_started()
    results.add(("ok", "0", 0))
    results.give_back(5)
    results.end()
    assert sent.messages == [("batch", [("ok", "0", 0)], False, 5)]


def test_by_default_each_result_leaves_at_once_and_says_nothing_is_held_back() -> None:
    sent = Sent()
    results = Results(sent)
    results.begin()
    for i in range(3):
        results.file_started()
        results.add(("ok", str(i), i))
    results.end()
    assert sent.messages == [("batch", [("ok", str(i), i)], True, 0) for i in range(3)]


def test_slow_files_of_one_batch_are_shared_by_the_workers(
    aegis_paths: AegisPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_leaks: None
) -> None:
    """The parent sends up to 32 files at once; a batch that turns out slow gives the files it
    has not started back, so a second worker takes them instead of waiting idle (the end of a
    scan is not one worker going through a batch of slow files alone)."""
    log = tmp_path / "pids.log"
    monkeypatch.setenv("AEGIS_TEST_DETECTORS", hostile.SPEC)
    monkeypatch.setenv("AEGIS_TEST_SLOW_LOG", str(log))
    tree = tmp_path / "tree"
    tree.mkdir()
    targets = []
    for i in range(12):
        targets.append(tree / f"slow-{i:02}.bin")
        targets[-1].write_bytes(hostile.SLOW + f" {i}\n".encode())
    (tree / "zz-eicar.com").write_bytes(EICAR)
    targets.append(tree / "zz-eicar.com")
    engine = Engine(aegis_paths)
    try:
        summary = engine.scan(targets, engine.default_options(jobs=2, use_cache=False))
    finally:
        engine.close()
    assert summary.files == 13 and summary.threats == 1
    pids = log.read_text().split()
    assert len(pids) == 12  # each slow file scanned once
    assert len(set(pids)) == 2, "one worker scanned the whole batch while the other waited"
