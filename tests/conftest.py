"""Shared fixtures. Every test runs with AEGIS_HOME in a temp folder: nothing touches the
real profile, and no test depends on another's cache."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from aegis_engine.paths import AegisPaths

if TYPE_CHECKING:
    from aegis_engine import Engine
    from aegis_gui.controller import TrayApp
    from tests.e2e_gui.helpers import MemoryKeyring

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
"""The environment of a child process that must find no keyring at all."""


@pytest.fixture(autouse=True)
def aegis_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("aegis-home")
    monkeypatch.setenv("AEGIS_HOME", str(home))
    return home


@pytest.fixture
def aegis_paths(aegis_home: Path) -> AegisPaths:
    return AegisPaths.under(aegis_home)


def write_settings(paths: AegisPaths, text: str) -> Path:
    """Write the profile's settings.toml (its folder made first)."""
    paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text(text)
    return paths.settings_file


@pytest.fixture
def eicar() -> bytes:
    return EICAR


@pytest.fixture
def engine(aegis_paths: AegisPaths) -> Iterator[Engine]:
    """An engine on the test's profile, closed after the test."""
    from aegis_engine import Engine

    eng = Engine(aegis_paths)
    yield eng
    eng.close()


@contextlib.contextmanager
def _keyring_in_use(backend: Any) -> Iterator[Any]:
    """``backend`` is this process's keyring meanwhile; the previous one is put back after."""
    import keyring

    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    """A keyring in this process only, for the test."""
    from tests.e2e_gui.helpers import MemoryKeyring

    with _keyring_in_use(MemoryKeyring()) as backend:
        yield backend


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """No keyring at all in this process, for the test (child processes: ``NO_KEYRING``)."""
    import keyring.backends.fail

    with _keyring_in_use(keyring.backends.fail.Keyring()):
        yield


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


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """On leaving, kill and reap ``proc`` if it still runs (a failing test leaves no process
    behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def json_lines_until(
    proc: subprocess.Popen[str], pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Read ``proc``'s JSON lines until one satisfies ``pred``; each line must arrive as it
    happens, as one complete JSON object. The lines read, the one that satisfied last."""
    import json
    import select
    import time

    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        d = json.loads(line)
        seen.append(d)
        if pred(d):
            return seen
    raise AssertionError(f"not seen: {seen}; stderr: {proc.stderr.read() if proc.stderr else ''}")


@pytest.fixture
def tray_app(
    qtbot: Any, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring
) -> Iterator[TrayApp]:
    """The tray app on the test's profile, started: no tray icon, no first-run dialog, no
    real-time protection (a monitor it starts scans on access only)."""
    from aegis_gui.controller import Options, TrayApp
    from tests.e2e_gui.helpers import quiet_monitor

    app = TrayApp(
        aegis_paths,
        Options(tray=False, first_run=False, protection=False, monitor_factory=quiet_monitor),
    )
    app.start()
    yield app
    app.shutdown()


def python_logging_connections(log: Path, *lines: str) -> list[str]:
    """The command line of a Python process that runs ``lines`` under an audit hook that
    appends to ``log`` each connection or address look-up it makes (local AF_UNIX sockets
    aside: the scan's worker processes)."""
    code = (
        "import socket, sys\n"
        "def hook(event, args):\n"
        "    if event == 'socket.connect' and args[0].family == socket.AF_UNIX:\n"
        "        return  # local: the scan's worker processes\n"
        "    if event in ('socket.connect', 'socket.getaddrinfo'):\n"
        f"        open({str(log)!r}, 'a').write(event + ' ' + repr(args[1:]) + '\\n')\n"
        "sys.addaudithook(hook)\n"
        + "".join(line + "\n" for line in lines)
    )
    return [sys.executable, "-c", code]


def cli_logging_connections(log: Path, *before: str) -> list[str]:
    """``aegis`` (its arguments to be appended) under that audit hook; ``before``: Python
    lines run before the CLI starts."""
    return python_logging_connections(
        log, *before, "from aegis_engine.cli import main", "sys.exit(main(sys.argv[1:]))"
    )


def _fds() -> set[int]:
    """Open descriptors, not counting the one that lists them (which would otherwise be in
    the baseline and hide the first descriptor a test leaks)."""
    own = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        listed = {int(n) for n in os.listdir(own)} - {own}
    finally:
        os.close(own)
    # listdir() works on a duplicate of ``own``, closed by now: keep only descriptors that
    # are still open (a leak stays open; a listing's own descriptor does not)
    still_open = set()
    for fd in listed:
        try:
            os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        still_open.add(fd)
    return still_open


def _helper_processes() -> set[int]:
    """Our descendant processes, except multiprocessing's long-lived helpers (the fork
    server and the resource tracker live as long as the test session)."""
    import psutil

    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "forkserver" in cmd and child.ppid() == os.getpid():
            continue  # the fork server itself; the workers forked from it do count
        if "resource_tracker" in cmd:
            continue
        out.add(child.pid)
    return out


@pytest.fixture
def no_leaks() -> object:
    """Fails a test that leaves threads, child processes or file descriptors behind.

    Start the fork server first, so its one pipe is part of the baseline."""
    import threading
    import time

    from aegis_engine.scanning.workers import mp_context

    ctx = mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
    threads = set(threading.enumerate())
    fds = _fds()
    procs = _helper_processes()
    yield None
    deadline = time.monotonic() + 15  # reaping takes a moment on a loaded machine
    while True:
        new_threads = [t for t in threading.enumerate() if t not in threads and t.is_alive()]
        new_fds = _fds() - fds
        new_procs = _helper_processes() - procs
        if not (new_threads or new_fds or new_procs) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not new_threads, f"leaked threads: {new_threads}"
    assert not new_procs, f"leaked processes: {sorted(new_procs)}"
    details = {fd: os.path.realpath(f"/proc/self/fd/{fd}") for fd in new_fds}
    if "PySide6.QtCore" in sys.modules:
        # Earlier GUI tests in this process leave Qt's own (non-Python) threads, which make
        # an eventfd for their event dispatcher when they wake: not ours to account for.
        details = {fd: t for fd, t in details.items() if not t.endswith("[eventfd]")}
    assert not details, f"leaked file descriptors: {details}"


@pytest.fixture(autouse=True)
def _stop_leftover_monitors(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test that fails half-way must not leave a monitor's (non-daemon) threads running:
    they would keep the whole test process from exiting. Stops, after each test, every
    monitor the test started and did not stop (the test's own assertions still decide)."""
    from aegis_engine.monitor import service

    started: list[service.Monitor] = []
    original = service.Monitor.start

    def start(self: service.Monitor) -> None:
        started.append(self)
        original(self)

    monkeypatch.setattr(service.Monitor, "start", start)
    yield
    for mon in started:
        if mon.running:
            mon.stop()


_SESSION: dict[str, int] = {"exitstatus": 0}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SESSION["exitstatus"] = int(exitstatus)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Last safety net, after the summary is printed: a non-daemon thread that some test left
    running (a monitor stopped by nobody) must not keep the test process from exiting; exit
    with pytest's own status instead of waiting for it forever."""
    import threading

    left = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if left:
        names = ", ".join(sorted({t.name for t in left}))
        print(f"\nconftest: threads left running ({names}); not waiting for them", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["exitstatus"])
