"""The Monitor as an object: lifecycle, threads, subscribers, backends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import EICAR
from helpers.monitor_support import Events, no_thread_leaks

from aegis_engine import Engine
from aegis_engine.errors import MonitorError
from aegis_engine.monitor import (
    DetectionEvent,
    Monitor,
    MonitorEvent,
    MonitorOptions,
    default_protected_folders,
    default_watch_folders,
    report_only,
)

__all__ = ["no_thread_leaks"]
pytestmark = pytest.mark.usefixtures("no_thread_leaks")


def test_lifecycle_threads_are_named_joined_and_not_daemons(engine: Engine, tmp_path: Path) -> None:
    mon = Monitor(engine, [tmp_path], options=MonitorOptions(process_interval=0.2),
                  scan_existing_processes=False)  # fmt: skip
    mon.stop()  # before start: nothing to do
    mon = Monitor(engine, [tmp_path], scan_existing_processes=False)
    mon.start()
    try:
        assert mon.running
        names = sorted(t.name for t in mon.threads)
        for expected in ("aegis-dispatch", "aegis-inotify", "aegis-onaccess", "aegis-processes",
                         "aegis-shield"):  # fmt: skip
            assert expected in names
        assert not any(t.daemon for t in mon.threads)
        with pytest.raises(MonitorError):
            mon.start()
    finally:
        mon.stop()
    assert not any(t.is_alive() for t in mon.threads)
    mon.stop()  # idempotent
    assert not mon.running


def test_a_failing_subscriber_does_not_stop_the_others(engine: Engine, tmp_path: Path) -> None:
    events = Events()
    calls: list[str] = []

    def broken(e: MonitorEvent) -> None:
        calls.append(e.kind)
        raise RuntimeError("subscriber bug")

    with Monitor(engine, [tmp_path], processes=False, handle=report_only) as mon:
        mon.subscribe(broken)
        unsubscribe = mon.subscribe(lambda e: calls.append("gone"))
        unsubscribe()
        mon.subscribe(events)
        (tmp_path / "a.com").write_bytes(EICAR)
        assert events.wait_for(lambda e: isinstance(e, DetectionEvent)) is not None
        (tmp_path / "b.com").write_bytes(EICAR)
        assert (
            events.wait_for(lambda e: isinstance(e, DetectionEvent) and e.path.endswith("b.com"))
            is not None
        )
    assert "gone" not in calls and calls.count("detection") == 2


def test_a_failing_handler_becomes_an_error_event(engine: Engine, tmp_path: Path) -> None:
    def handler(report: object) -> dict[str, str]:
        raise RuntimeError("vault on fire")

    events = Events()
    with Monitor(engine, [tmp_path], processes=False, handle=handler) as mon:  # type: ignore[arg-type]
        mon.subscribe(events)
        (tmp_path / "a.com").write_bytes(EICAR)
        err = events.wait_for(lambda e: e.to_dict().get("code") == "action-failed")
        assert err is not None and "vault on fire" in err.to_dict()["message"]
        (tmp_path / "b.com").write_bytes(EICAR)  # and it goes on
        assert (
            events.wait_for(
                lambda e: (
                    len([x for x in events.dicts("error") if x["code"] == "action-failed"]) == 2
                )
            )
            is not None
        )


@pytest.mark.parametrize("backend", ["watchdog", "polling"])
def test_portable_backends(engine: Engine, tmp_path: Path, backend: str) -> None:
    """watchdog's native observer (what other systems use) and the polling fallback."""
    events = Events()
    opts = MonitorOptions(backend=backend, polling_interval=0.3, root_check_interval=0.2)
    with Monitor(engine, [tmp_path], processes=False, handle=report_only, options=opts) as mon:
        mon.subscribe(events)
        assert mon.backend == backend
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "e.com").write_bytes(EICAR)
        det = events.wait_for(lambda e: isinstance(e, DetectionEvent))
        assert det is not None and det.to_dict()["path"] == str(tmp_path / "sub" / "e.com")


def test_default_folders_and_protection(engine: Engine, tmp_path: Path) -> None:
    for p in default_watch_folders() + default_protected_folders():
        assert p.is_dir()
    mon = Monitor(engine, [tmp_path / "a"], protect=[tmp_path / "b"])
    assert mon.watch == [str(tmp_path / "a")] and mon.protect == [str(tmp_path / "b")]
    mon = Monitor(engine, [tmp_path / "a"], shield=False)
    assert mon.protect == []
    nested = Monitor(engine, [tmp_path, tmp_path / "inner"])
    assert nested.roots == [str(tmp_path)]


def test_subscribers_are_called_on_one_thread(engine: Engine, tmp_path: Path) -> None:
    threads: set[str] = set()
    events = Events()

    def record(e: MonitorEvent) -> None:
        threads.add(threading.current_thread().name)

    with Monitor(engine, [tmp_path], processes=False, handle=report_only) as mon:
        mon.subscribe(record)
        mon.subscribe(events)
        for i in range(5):
            (tmp_path / f"{i}.com").write_bytes(EICAR)
        assert events.wait_for(lambda e: len(events.of("detection")) >= 5) is not None
    assert threads == {"aegis-dispatch"}
