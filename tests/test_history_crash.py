"""Crash safety of the history (issue 12): SIGKILL while records are being written never
damages the database and never loses a record whose write had returned.

SQLite in WAL mode commits each record atomically; a process killed mid-write leaves either
the whole record or nothing. (Power loss with ``synchronous=NORMAL`` may lose the last
transactions but not the database; not testable here.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_engine.history import History
from aegis_engine.paths import AegisPaths

pytestmark = pytest.mark.usefixtures("no_leaks")

CHILD = """
import sys
from pathlib import Path
from aegis_engine.history import History
h = History(Path(sys.argv[1]), warn=lambda m: print("WARN", m, flush=True))
n = 0
while True:
    h.record_action("quarantine", f"/tmp/{sys.argv[2]}-{n}", outcome="success",
                    explanation=["x" * (n % 500)])
    print(n, flush=True)  # this record's write has returned
    n += 1
"""


@pytest.mark.parametrize("after", [1, 7, 40])
def test_sigkill_while_writing_history_loses_nothing(aegis_paths: AegisPaths, after: int) -> None:
    path = aegis_paths.history_file
    acknowledged: dict[str, int] = {}
    for round_no in range(4):
        tag = f"r{round_no}"
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), tag],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        last = -1
        for line in proc.stdout:
            assert not line.startswith("WARN"), line
            last = int(line)
            if last + 1 >= after * (round_no + 1):
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for line in proc.stdout:  # what it acknowledged before the kill landed
            last = int(line)
        proc.stdout.close()
        acknowledged[tag] = last + 1
    warnings: list[str] = []
    with History(path, warn=warnings.append) as history:
        events = history.events()
    assert warnings == []  # not damaged: nothing was moved aside
    assert not list(path.parent.glob("*.corrupt-*"))
    for tag, count in acknowledged.items():
        paths = {e.path for e in events if e.path.startswith(f"/tmp/{tag}-")}
        assert {f"/tmp/{tag}-{n}" for n in range(count)} <= paths  # nothing acknowledged lost
        assert len(paths) <= count + 1  # at most the one in flight, whole


def test_sigkill_while_writing_consent_keeps_a_valid_file(aegis_paths: AegisPaths) -> None:
    """The consent file is replaced atomically: killed at any moment, it parses."""
    from aegis_engine.privacy import ConsentStore

    child = (
        "import sys\nfrom aegis_engine.paths import AegisPaths\n"
        "from aegis_engine.privacy import ConsentStore\n"
        "s = ConsentStore.for_paths(AegisPaths.under(__import__('pathlib').Path(sys.argv[1])))\n"
        "n = 0\nwhile True:\n"
        "    s.set('update-checks', n % 2 == 0); print(n, flush=True); n += 1\n"
    )
    home = aegis_paths.config_dir.parent
    for stop_after in (1, 5, 30):
        proc = subprocess.Popen(
            [sys.executable, "-c", child, str(home)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if int(line) + 1 >= stop_after:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        warnings: list[str] = []
        store = ConsentStore.for_paths(aegis_paths, warn=warnings.append)
        store.is_granted("update-checks")
        assert warnings == [], warnings  # never "damaged"
    leftovers = [p for p in Path(aegis_paths.config_dir).iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 3  # a killed write may leave its temp file, never a bad file
