"""Which process did it, and stopping it: per-process write counters, open files, signals.

inotify does not say which process changed a file (fanotify does, but only with
CAP_SYS_ADMIN), so the shield compares per-process I/O counters before and during a burst.
On Linux they are read straight from ``/proc/<pid>/io``: ``write_bytes`` (bytes the process
dirtied in the page cache; not for pages already dirty, nor on tmpfs), ``wchar`` (bytes
passed to write(), to files, pipes and sockets alike), ``rchar`` (bytes read) and ``syscw``
(write calls). Elsewhere psutil's ``io_counters`` are used where the system has them. Open
files (``/proc/<pid>/fd``) confirm. Reading the counters costs about 45 us per process.

A process owned by another user cannot be read or signalled without privileges: that is
reported as ``denied``, never raised.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psutil

from .events import ProcessRef

__all__ = ["Candidate", "IoSampler", "IoSnapshot", "ProcessControl", "rank_candidates"]

_MATCH_LOG2 = 2.0
"""A writer "matches" a burst when what it wrote is within 2**2 = 4 times what the burst wrote."""

IoSnapshot = dict[int, tuple[int, int, int, int]]
"""pid -> (write_bytes, wchar, rchar, syscw)."""


class IoSampler:
    """Per-process I/O counters of every process we may read."""

    def __init__(self, proc: str = "/proc") -> None:
        self._proc = proc
        self.linux = sys.platform.startswith("linux") and os.path.isdir(proc)

    def snapshot(self) -> IoSnapshot:
        return self._linux() if self.linux else self._psutil()

    def _linux(self) -> IoSnapshot:
        out: IoSnapshot = {}
        proc = self._proc
        try:
            names = os.listdir(proc)
        except OSError:
            return out
        for name in names:
            if not name.isdigit():
                continue
            try:
                fd = os.open(f"{proc}/{name}/io", os.O_RDONLY)
            except OSError:
                continue  # gone, or another user's process
            try:
                fields = os.read(fd, 1024).split()
            except OSError:
                continue
            finally:
                os.close(fd)
            try:
                out[int(name)] = (int(fields[11]), int(fields[3]), int(fields[1]), int(fields[7]))
            except (IndexError, ValueError):
                continue
        return out

    def _psutil(self) -> IoSnapshot:  # pragma: no cover - exercised on other systems
        out: IoSnapshot = {}
        for p in psutil.process_iter():
            try:
                io = p.io_counters()
            except (psutil.Error, AttributeError, NotImplementedError):
                continue
            wchar = int(getattr(io, "write_chars", io.write_bytes))
            rchar = int(getattr(io, "read_chars", io.read_bytes))
            out[p.pid] = (int(io.write_bytes), wchar, rchar, int(io.write_count))
        return out

    def open_files_under(self, pid: int, roots: Sequence[str]) -> list[str]:
        """Files under ``roots`` that ``pid`` has open now (empty if it cannot be read)."""
        prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        found: list[str] = []
        if self.linux:
            fd_dir = f"{self._proc}/{pid}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:
                return found
            for fd in fds:
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if target.startswith(prefixes):
                    found.append(target)
            return found
        with contextlib.suppress(psutil.Error):  # pragma: no cover - other systems
            found = [
                f.path for f in psutil.Process(pid).open_files() if f.path.startswith(prefixes)
            ]
        return found


@dataclass(frozen=True)
class Candidate:
    """One process's I/O between two snapshots."""

    pid: int
    write_bytes: int
    """Bytes it dirtied in the page cache (0 for pages already dirty, and on tmpfs)."""
    wchar: int
    """Bytes it passed to write(), to files, pipes and sockets alike."""
    rchar: int
    syscw: int = 0
    open_files: tuple[str, ...] = ()
    matches_burst: bool = False
    """What it wrote is within a factor of 4 of what the burst wrote in the protected folder
    (set by :func:`rank_candidates` when there is something to compare)."""

    @property
    def wrote(self) -> int:
        """The evidence: the larger of the two write counters."""
        return max(self.write_bytes, self.wchar)

    @property
    def reads_like_it_writes(self) -> bool:
        """Ransomware reads each original and writes it back encrypted: about as many bytes
        in as out."""
        return self.wrote > 0 and 0.25 <= self.rchar / self.wrote <= 4.0

    @property
    def bulk_writer(self) -> bool:
        """Writes in large pieces (file content), not many small messages (a chatty client
        of a socket or a pipe)."""
        if self.write_bytes >= 4096 and self.write_bytes >= self.wchar // 2:
            return True
        return self.syscw > 0 and self.wchar / self.syscw >= 1024

    @property
    def traits(self) -> int:
        """How many of the two ransomware traits it has (reads like it writes, bulk writer)."""
        return int(self.reads_like_it_writes) + int(self.bulk_writer)

    @property
    def looks_the_part(self) -> bool:
        """Evidence enough to suspend it: it holds a file of the protected folder open; or it
        wrote about what the burst wrote and has a ransomware trait; or it has both traits."""
        return (
            bool(self.open_files)
            or (self.matches_burst and self.traits >= 1)
            or self.traits >= 2
        )

    def closeness(self, observed: int) -> float:
        """How close what it wrote is to ``observed`` (0 is exact; more negative is
        further). write() bytes match the encrypted files exactly; page-cache bytes are
        rounded to pages: whichever counter is closer counts."""
        counts = [n for n in (self.wchar, self.write_bytes) if n > 0] or [1]
        return -min(abs(math.log2(n / observed)) for n in counts)

    def score(self, observed: int) -> tuple[int, int, int, float]:
        """Higher is more likely: it holds a file of the protected folder open; then whether
        what it wrote matches the burst (a busy machine has other heavy writers, with both
        traits: a package manager, a backup); then how many traits it has; then how close
        what it wrote is to what the burst wrote (or, with nothing to compare, how much it
        wrote)."""
        opened = int(bool(self.open_files))
        if observed <= 0:
            return (opened, 0, self.traits, math.log2(max(self.wrote, 1)))
        return (opened, int(self.matches_burst), self.traits, self.closeness(observed))


def rank_candidates(
    before: IoSnapshot,
    after: IoSnapshot,
    *,
    observed: int,
    exclude: Iterable[int],
    open_files: Callable[[int], list[str]],
    max_candidates: int = 16,
) -> list[Candidate]:
    """Processes that wrote at least a page (4 KiB) between the two snapshots, most likely
    first (see :meth:`Candidate.score`). Counters of processes that started in between
    count from 0; only the biggest writers are checked for open files."""
    skip = set(exclude) | {0, 1}
    deltas: list[Candidate] = []
    for pid, (wb, wc, rc, sw) in after.items():
        if pid in skip:
            continue
        b_wb, b_wc, b_rc, b_sw = before.get(pid, (0, 0, 0, 0))
        if wb < b_wb or wc < b_wc or rc < b_rc:  # pid reused by a new process
            b_wb = b_wc = b_rc = b_sw = 0
        c = Candidate(pid, wb - b_wb, wc - b_wc, rc - b_rc, sw - b_sw)
        if c.wrote >= 4096:
            deltas.append(c)
    deltas.sort(key=lambda c: c.wrote, reverse=True)
    checked = [
        Candidate(
            c.pid,
            c.write_bytes,
            c.wchar,
            c.rchar,
            c.syscw,
            tuple(open_files(c.pid)),
            matches_burst=observed > 0 and c.closeness(observed) >= -_MATCH_LOG2,
        )
        for c in deltas[:max_candidates]
    ]
    checked.sort(key=lambda c: c.score(observed), reverse=True)
    return checked


class ProcessControl:
    """Suspend, resume and kill, answering with an outcome instead of raising."""

    def _act(self, pid: int, what: str) -> str:
        try:
            proc = psutil.Process(pid)
            if what == "suspend":
                proc.suspend()
                return "suspended"
            if what == "resume":
                proc.resume()
                return "resumed"
            proc.kill()
            return "killed"
        except psutil.ZombieProcess:
            return "exited"
        except psutil.NoSuchProcess:
            return "exited"
        except psutil.AccessDenied:
            return "denied"
        except OSError:
            return "failed"

    def suspend(self, pid: int) -> str:
        return self._act(pid, "suspend")

    def resume(self, pid: int) -> str:
        return self._act(pid, "resume")

    def kill(self, pid: int) -> str:
        return self._act(pid, "kill")

    def children(self, pid: int) -> list[int]:
        try:
            return [c.pid for c in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []

    def describe(self, pid: int, outcome: str) -> ProcessRef:
        name = exe = user = None
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                with contextlib.suppress(psutil.Error):
                    name = proc.name()
                with contextlib.suppress(psutil.Error, OSError):
                    exe = proc.exe() or None
                with contextlib.suppress(psutil.Error, KeyError):
                    user = proc.username()
        except psutil.Error:
            pass
        return ProcessRef(pid=pid, name=name, exe=exe, outcome=outcome, user=user)
