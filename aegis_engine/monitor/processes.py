"""The process monitor: notice new processes, scan their executables, apply behaviour rules.

New processes are found by comparing the list of pids every ``process_interval`` (1 s):
listing pids costs well under a millisecond, and needs no privileges (kernel process events
need root on Linux). A process that starts and ends between two looks is not seen; that is
the price of not needing root. Each executable is scanned once per file identity (device,
inode, size, modification time): a thousand compiler runs cost one scan.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import psutil

from ..results import FileReport, Verdict
from .behaviour import BehaviourRules, ProcessFacts
from .events import RuleHit
from .options import FolderKinds, MonitorOptions
from .worker import Worker

__all__ = ["ProcessFinding", "ProcessMonitor", "ProcessStats"]

log = logging.getLogger(__name__)

ScanFn = Callable[[str], FileReport | None]
_MAX_HASH = 256 * 1024 * 1024
_YOUNG = 3.0
"""Seconds during which a new process is looked at again if its executable changes (a
process may be seen between fork and exec)."""


@dataclass(frozen=True)
class ProcessFinding:
    """A new process that broke rules or whose executable is not clean."""

    facts: ProcessFacts
    hits: tuple[RuleHit, ...]
    report: FileReport | None


@dataclass
class ProcessStats:
    polls: int = 0
    seen: int = 0
    vanished: int = 0
    """Processes that exited before they could be looked at."""
    inaccessible: int = 0
    """Processes whose executable could not be read (another user's, without privileges)."""
    exe_scans: int = 0
    exe_cache_hits: int = 0
    findings: int = 0


@dataclass
class _ExeVerdict:
    report: FileReport | None
    sha256: str | None


@dataclass
class ProcessMonitor(Worker):
    scan: ScanFn
    rules: BehaviourRules
    folders: FolderKinds
    options: MonitorOptions
    on_finding: Callable[[ProcessFinding], None]
    scan_existing: bool = True
    """Also look at the processes already running when the monitor starts."""

    thread_name = "aegis-processes"
    stats: ProcessStats = field(default_factory=ProcessStats)

    def __post_init__(self) -> None:
        self._known: set[int] = set()
        self._young: dict[int, tuple[str | None, float]] = {}
        self._exe_cache: OrderedDict[tuple[int, int, int, int], _ExeVerdict] = OrderedDict()
        self._stop = threading.Event()
        self._self = os.getpid()

    # -- thread --------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.scan_existing:
            self._known = set(psutil.pids())
        super().start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for finding in self.poll_once():
                    self.on_finding(finding)
            except Exception:  # keep monitoring whatever one process does
                log.exception("process monitor: poll failed")
            self._stop.wait(self.options.process_interval)

    # -- one look ------------------------------------------------------------------------------
    def poll_once(self) -> list[ProcessFinding]:
        """Look at processes started since the last call; returns what should be reported.

        A process may be seen between fork and exec, still running its parent's program, so
        processes first seen less than 3 s ago are looked at again if their executable
        changed since."""
        self.stats.polls += 1
        pids = set(psutil.pids())
        new = sorted(pids - self._known)
        self._known = pids
        now = time.monotonic()
        young = {p: v for p, v in self._young.items() if p in pids and now - v[1] <= _YOUNG}
        again = [p for p, (exe, _t) in young.items() if _exe_now(p) != exe]
        self._young = young
        out = []
        for pid in new + again:
            if self._stop.is_set():
                break
            if pid == self._self:
                continue
            facts, finding = self._inspect(pid)
            if facts is not None:
                self._young[pid] = (facts.exe, young[pid][1] if pid in young else now)
            if finding is not None:
                self.stats.findings += 1
                out.append(finding)
        return out

    def inspect(self, pid: int) -> ProcessFinding | None:
        """Evaluate one process now; None if it is fine or already gone."""
        return self._inspect(pid)[1]

    def _inspect(self, pid: int) -> tuple[ProcessFacts | None, ProcessFinding | None]:
        facts = self.facts(pid)
        if facts is None:
            return None, None
        report: FileReport | None = None
        if facts.exe and not facts.exe_deleted:
            verdict = self._scan_exe(facts.exe)
            if verdict is not None:
                report = verdict.report
                facts = _with(facts, sha256=verdict.sha256, verdict=_verdict(report))
        elif facts.exe_deleted:
            facts = _with(facts, sha256=_hash_running_exe(pid))
        hits = tuple(self.rules.evaluate(facts, self.folders))
        threat = report is not None and report.verdict.is_threat
        if not hits and not threat:
            return facts, None
        return facts, ProcessFinding(facts, hits, report)

    def facts(self, pid: int) -> ProcessFacts | None:
        """What can be learned about ``pid`` (None if it exited meanwhile)."""
        self.stats.seen += 1
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                name = proc.name()
                ppid = proc.ppid()
                user: str | None = None
                with contextlib.suppress(psutil.AccessDenied, KeyError):
                    user = proc.username()
                exe, denied, deleted = _exe_of(proc)
                if denied:
                    self.stats.inaccessible += 1
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            self.stats.vanished += 1
            return None
        except psutil.AccessDenied:
            self.stats.inaccessible += 1
            return None
        parent: str | None = None
        if ppid:
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(ppid).name()
        return ProcessFacts(
            pid=pid, name=name, exe=exe, exe_deleted=deleted, ppid=ppid,
            parent_name=parent, user=user,
        )  # fmt: skip

    def _scan_exe(self, exe: str) -> _ExeVerdict | None:
        try:
            st = os.stat(exe)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._exe_cache.get(key)
        if cached is not None:
            self._exe_cache.move_to_end(key)
            self.stats.exe_cache_hits += 1
            return cached
        try:
            report = self.scan(os.path.realpath(exe))
        except Exception:
            log.debug("process monitor: cannot scan %s", exe, exc_info=True)
            return None
        self.stats.exe_scans += 1
        verdict = _ExeVerdict(report, report.sha256 if report is not None else None)
        self._exe_cache[key] = verdict
        while len(self._exe_cache) > self.options.exe_cache_size:
            self._exe_cache.popitem(last=False)
        return verdict


def _verdict(report: FileReport | None) -> str | None:
    if report is None:
        return None
    return report.verdict.value if report.verdict is not Verdict.INCOMPLETE else None


def _with(f: ProcessFacts, **changes: Any) -> ProcessFacts:
    return replace(f, **changes)


def _exe_now(pid: int) -> str | None:
    try:
        return _exe_of(psutil.Process(pid))[0]
    except psutil.Error:
        return None


_DELETED = " (deleted)"


def _exe_of(proc: psutil.Process) -> tuple[str | None, bool, bool]:
    """``(path, denied, deleted)`` of the running executable.

    On Linux it is read from ``/proc/<pid>/exe`` only, once: psutil would guess the path from
    the command line when denied (a command line is whatever the process says it is), and
    the kernel itself marks a program whose file was deleted or replaced (``(deleted)``).
    Programs run from a memory file (``/memfd:...``) never had a path; container runtimes
    (runc) and sandboxes do that, so it is not counted as deleted."""
    if sys.platform.startswith("linux"):
        try:
            target = os.readlink(f"/proc/{proc.pid}/exe")
        except PermissionError:
            return None, True, False
        except OSError:
            return None, False, False  # a kernel thread, or gone
        target = target.split("\x00", 1)[0]
        deleted = False
        if target.endswith(_DELETED) and not target.startswith("/memfd:"):
            path = target[: -len(_DELETED)]
            deleted = not _same_file(proc.pid, path)
            if deleted:
                target = path
        return target or None, False, deleted
    try:  # pragma: no cover - other systems
        exe = proc.exe() or None
    except psutil.AccessDenied:  # pragma: no cover
        return None, True, False
    return exe, False, bool(exe) and not os.path.exists(exe)  # pragma: no cover


def _same_file(pid: int, path: str) -> bool:
    """The file at ``path`` is the running image (so a name that ends in ``(deleted)``)."""
    try:
        a = os.stat(f"/proc/{pid}/exe")
        b = os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _hash_running_exe(pid: int) -> str | None:
    """SHA-256 of a running program whose file was deleted (Linux keeps it reachable)."""
    if not sys.platform.startswith("linux"):  # pragma: no cover - other systems
        return None
    digest = hashlib.sha256()
    try:
        with open(f"/proc/{pid}/exe", "rb") as fh:
            read = 0
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                read += len(chunk)
                if read > _MAX_HASH:
                    return None
    except OSError:
        return None
    return digest.hexdigest()
