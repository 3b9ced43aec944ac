"""Shared pieces of the monitor tests: a leaked-thread check, an event recorder, helpers to
run code as another user, and a guard that keeps the shield's hands off foreign processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from aegis_engine.monitor import MonitorEvent

REPO = Path(__file__).resolve().parents[2]
SIM = Path(__file__).with_name("ransomware_sim.py")
NOBODY = 65534


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    """Fail the test if it leaves threads running (as watchdog's test suite does)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"threads leaked: {[t.name for t in extra]}"


class Events:
    """A subscriber that records events and lets a test wait for one."""

    def __init__(self) -> None:
        self.items: list[MonitorEvent] = []
        self._cond = threading.Condition()

    def __call__(self, event: MonitorEvent) -> None:
        with self._cond:
            self.items.append(event)
            self._cond.notify_all()

    def of(self, kind: str) -> list[MonitorEvent]:
        with self._cond:
            return [e for e in self.items if e.kind == kind]

    def dicts(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [e.to_dict() for e in self.items if kind is None or e.kind == kind]

    def wait_for(
        self, pred: Callable[[MonitorEvent], bool], timeout: float = 20.0
    ) -> MonitorEvent | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.items:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


def descendant_guard() -> Callable[[int], bool]:
    """Allow the shield to signal only processes started by this test process: if its
    behavioural attribution ever picked another process on this shared machine, that process
    is left alone and the test sees outcome ``refused``."""
    me = os.getpid()

    def guard(pid: int) -> bool:
        try:
            return any(p.pid == me for p in psutil.Process(pid).parents())
        except psutil.Error:
            return False

    return guard


def system_python_for_other_users() -> str | None:
    """A Python 3.11 that uid 65534 can run (the venv's interpreter lives under /root)."""
    for cand in ("/usr/bin/python3.11", "/usr/bin/python3"):
        if os.path.exists(cand):
            out = subprocess.run(
                [cand, "-c", "import sys; print(sys.version_info[:2] == (3, 11))"],
                capture_output=True,
                text=True,
            )
            if out.stdout.strip() == "True":
                return cand
    return None


def other_user_env(home: Path) -> dict[str, str]:
    site = sysconfig.get_path("purelib")  # the running interpreter's, wherever its venv is
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{site}:{REPO}",
        "AEGIS_HOME": str(home),
        "AEGIS_RESOURCES": str(REPO / "resources"),
        "HOME": str(home),
    }


def needs_root_and_nobody() -> str:
    """Skip unless we are root and a system Python can run as uid 65534."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start processes as another user")
    py = system_python_for_other_users()
    if py is None:
        pytest.skip("no Python 3.11 runnable by uid 65534")
    return py


def run_as_nobody(
    py: str, shared_tmp: Path, code: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with the system Python ``py`` as uid 65534, with a home and profile of
    its own under ``shared_tmp``."""
    home = shared_tmp / "home"
    home.mkdir(mode=0o777, exist_ok=True)
    home.chmod(0o777)
    return subprocess.run(
        [py, "-c", code, *args],
        user=65534,
        cwd=shared_tmp,
        env=other_user_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp folder other users may enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="aegis-mon-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def spawn_sim(folder: Path, rate: float, *extra: str) -> subprocess.Popen[str]:
    """Start the ransomware simulator as a separate process (cwd outside the folder)."""
    return subprocess.Popen(
        [sys.executable, str(SIM), str(folder), "--rate", str(rate), *extra],
        cwd=tempfile.gettempdir(),
        stdout=subprocess.PIPE,
        text=True,
    )


def make_documents(folder: Path, n: int, seed: int = 7) -> list[Path]:
    """``n`` plausible user files: text, CSV, and zip-based office documents."""
    import random
    import zipfile

    rnd = random.Random(seed)
    words = [
        "alpha", "beta", "report", "budget", "meeting", "notes", "project", "invoice",
        "total", "amount", "client", "quarter", "review", "draft", "final", "summary",
    ]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(300, 2000)))
        kind = i % 10
        if kind == 9:
            p = folder / f"letter{i:04d}.docx"
            with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.writestr("word/document.xml", f"<w:document>{text}</w:document>")
        elif kind >= 7:
            p = folder / f"table{i:04d}.csv"
            p.write_text(text.replace(" ", ","))
        else:
            p = folder / f"note{i:04d}.txt"
            p.write_text(text)
        out.append(p)
    return out


def originals_left(folder: Path, docs: list[Path]) -> int:
    return sum(1 for p in docs if p.exists())


def stop_process(p: subprocess.Popen[str]) -> None:
    """Kill a (possibly suspended) child and reap it."""
    if p.poll() is None:
        p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10)
    if p.stdout is not None:
        p.stdout.close()
