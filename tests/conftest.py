"""Shared fixtures. Every test runs with AEGIS_HOME in a temp folder: nothing touches the
real profile, and no test depends on another's cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_engine.paths import AegisPaths

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")


@pytest.fixture(autouse=True)
def aegis_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("aegis-home")
    monkeypatch.setenv("AEGIS_HOME", str(home))
    return home


@pytest.fixture
def aegis_paths(aegis_home: Path) -> AegisPaths:
    return AegisPaths.under(aegis_home)


@pytest.fixture
def eicar() -> bytes:
    return EICAR


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``aegis`` as a real process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "aegis_engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _fds() -> set[int]:
    try:
        own = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # pragma: no cover - not Linux
        return set()
    try:
        return {int(n) for n in os.listdir(own)} - {own}  # not the fd that lists them
    finally:
        os.close(own)


@pytest.fixture
def no_leaks() -> object:
    """Fail a test that leaves threads, file descriptors or child processes behind (the
    checks watchdog's own suite runs); opt in with ``pytestmark = usefixtures("no_leaks")``."""
    import gc
    import threading
    import time

    threads = set(threading.enumerate())
    fds = _fds()
    yield
    deadline = time.monotonic() + 10
    while True:  # threads may take a moment to finish after being told to stop
        gc.collect()
        extra_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        extra_fds = {
            fd: os.readlink(f"/proc/self/fd/{fd}")
            for fd in _fds() - fds
            if os.path.exists(f"/proc/self/fd/{fd}")
        }
        children = _children()
        if not (extra_threads or extra_fds or children) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not extra_threads, f"threads left running: {extra_threads}"
    assert not extra_fds, f"file descriptors left open: {extra_fds}"
    assert not children, f"child processes left running: {children}"


def _children() -> list[int]:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return []
    return [c.pid for c in psutil.Process().children(recursive=True) if c.is_running()]
