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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

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
            counters = self._linux_one(name)
            if counters is not None:
                out[int(name)] = counters
        return out

    def _linux_one(self, pid: str) -> tuple[int, int, int, int] | None:
        try:
            fd = os.open(f"{self._proc}/{pid}/io", os.O_RDONLY)
        except OSError:
            return None  # gone, or another user's process
        try:
            fields = os.read(fd, 1024).split()
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            return (int(fields[11]), int(fields[3]), int(fields[1]), int(fields[7]))
        except (IndexError, ValueError):
            return None

    def counters(self, pid: int) -> tuple[int, int, int, int] | None:
        """One process's ``(write_bytes, wchar, rchar, syscw)`` now (None if gone or
        unreadable): what :meth:`snapshot` reads, for one process, cheaply."""
        if self.linux:
            return self._linux_one(str(pid))
        try:  # pragma: no cover - other systems
            io = psutil.Process(pid).io_counters()
        except (psutil.Error, AttributeError, NotImplementedError):  # pragma: no cover
            return None
        wchar = int(getattr(io, "write_chars", io.write_bytes))  # pragma: no cover
        rchar = int(getattr(io, "read_chars", io.read_bytes))  # pragma: no cover
        return (int(io.write_bytes), wchar, rchar, int(io.write_count))  # pragma: no cover

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

    def _fds_under(self, pid: int, roots: Sequence[str]) -> Iterator[tuple[str, str]]:
        """(fd, path) of each file under ``roots`` that ``pid`` has open now (Linux)."""
        prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        fd_dir = f"{self._proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith(prefixes):
                yield fd, target

    def open_files_under(self, pid: int, roots: Sequence[str]) -> list[str]:
        """Files under ``roots`` that ``pid`` has open now (empty if it cannot be read)."""
        if self.linux:
            return [target for _fd, target in self._fds_under(pid, roots)]
        prefixes = tuple(r.rstrip(os.sep) + os.sep for r in roots)
        found: list[str] = []
        with contextlib.suppress(psutil.Error):  # pragma: no cover - other systems
            found = [
                f.path for f in psutil.Process(pid).open_files() if f.path.startswith(prefixes)
            ]
        return found

    def open_for_writing_under(self, pid: int, roots: Sequence[str]) -> list[str]:
        """Files under ``roots`` that ``pid`` has open for writing now. An attacker writes
        the protected files; a scanner, an indexer or a backup only reads them. (Elsewhere
        than Linux: every open file, as :meth:`open_files_under`.)"""
        if not self.linux:  # pragma: no cover - other systems
            return self.open_files_under(pid, roots)
        found: list[str] = []
        for fd, target in self._fds_under(pid, roots):
            try:
                with open(f"{self._proc}/{pid}/fdinfo/{fd}", "rb") as fh:
                    info = fh.read(512)
            except OSError:
                continue
            for line in info.splitlines():
                if line.startswith(b"flags:"):
                    with contextlib.suppress(ValueError):
                        if int(line.split()[1], 8) & 3 in (os.O_WRONLY, os.O_RDWR):
                            found.append(target)
                    break
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


_WATCH_TOP = 4
"""How many of the first candidates are watched when the ranking cannot separate them."""
_IN_STEP = 0.8
"""A contender "writes in step with the burst" when at least this share of its writes fall
while a folder of the burst changes."""
_OUT_OF_STEP = 0.5
_MIN_WRITES = 3
"""Writes a contender must be seen making before its share means anything."""
_LEAD = 0.25
"""At the end of the watch, a contender whose share of writes in step leads every other's by
this much goes first."""


def contenders(found: Sequence[Candidate]) -> list[Candidate]:
    """The candidates to watch when the evidence is weak: when the first looks the part but
    holds no file of the protected folder open (the one strong piece of evidence, sampled at
    one instant, when an attacker may be between two files), every one of the first few that
    looks the part, when there are two or more. A second, identical writer elsewhere on the
    machine (a backup, another copy of the same program) matches the burst as well as the
    attacker does, and then only closeness in bytes ranks them; on a loaded machine the
    attacker may even be missing from the ranking (its writes were counted in the baseline,
    their events read after it). A lone candidate that looks the part is not watched: that
    would cost files in every attack for a case the ranking already settles. Empty when there
    is nothing to settle."""
    if not found or not found[0].looks_the_part or found[0].open_files:
        return []
    rivals = [c for c in found[:_WATCH_TOP] if c.looks_the_part]
    return rivals if len(rivals) > 1 else []


@dataclass
class _Watched:
    wchar: int
    opened: dict[str, None]
    writes: list[int]
    """The samples at which its write counter had grown since the one before."""
    gone: bool = False


class ContenderWatch:
    """Watch a few contenders and the burst's own folders over a short window, many times:
    which of them is seen holding a file of the protected folder open, and whose write()
    counter (``wchar`` of ``/proc/<pid>/io``) grows in step with the folders the burst is
    changing (a directory's modification time moves whenever a file is created, renamed or
    deleted in it). A writer elsewhere grows at other moments."""

    def __init__(
        self,
        sampler: IoSampler,
        found: Sequence[Candidate],
        roots: Sequence[str],
        dirs: Iterable[str],
    ) -> None:
        self._sampler = sampler
        self._roots = list(roots)
        self._dirs: dict[str, int | None] = {d: self._mtime(d) for d in dirs}
        self._changes: set[int] = set()
        self._near: set[int] = set()
        """Samples with a folder change in them or next to them."""
        self.samples = 0
        self.seen: dict[int, _Watched] = {}
        for c in found:
            self.add(c.pid)

    def add(self, pid: int) -> None:
        """Watch ``pid`` too, from the next sample."""
        if pid not in self.seen:
            now = self._sampler.counters(pid)
            self.seen[pid] = _Watched(now[1] if now else 0, {}, [], now is None)

    @staticmethod
    def _mtime(path: str) -> int | None:
        try:
            return os.stat(path).st_mtime_ns
        except OSError:
            return None

    def sample(self) -> None:
        """One look at the folders, then at each contender."""
        k = self.samples
        for d, old in self._dirs.items():
            m = self._mtime(d)
            if m != old:
                self._dirs[d] = m
                self._changes.add(k)
                self._near.update(i for i in (k - 1, k, k + 1) if i >= 0)
        for pid, w in self.seen.items():
            if w.gone:
                continue
            counters = self._sampler.counters(pid)
            if counters is None:
                w.gone = True
                continue
            for path in self._sampler.open_for_writing_under(pid, self._roots):
                w.opened.setdefault(path, None)
            if counters[1] > w.wchar:
                w.writes.append(k)
            w.wchar = counters[1]
        self.samples += 1

    def in_step(self, pid: int) -> float:
        """Share of ``pid``'s writes seen with a change of a folder of the burst in the same
        sample or one next to it. Each sample reads the folders first, then the counters: a
        file created (or renamed) just before the write shows in the same sample or the one
        before, one deleted just after in the same or the next. A writer elsewhere coincides
        only as often as the folders change at all."""
        writes = self.seen[pid].writes
        if not writes:
            return 0.0
        changes = self._changes
        hits = sum(1 for k in writes if k in changes or k - 1 in changes or k + 1 in changes)
        return hits / len(writes)

    def chance(self) -> float:
        """Share of all samples with a folder change in it or next to it: how often any
        writer's writes would seem in step by chance. On a loaded machine samples are far
        apart and nearly every one is next to a change: then timing tells nothing."""
        if not self.samples:
            return 1.0
        near = len(self._near) - (self.samples in self._near)  # the next sample is not yet
        return near / self.samples

    def _timing_tells(self) -> bool:
        return self.chance() <= _OUT_OF_STEP

    def touching(self, pid: int) -> bool:
        """Seen touching the protected folder: a file of it open, or writes in step (when
        writes elsewhere would not seem in step as often)."""
        w = self.seen[pid]
        return bool(w.opened) or (
            len(w.writes) >= _MIN_WRITES
            and self.in_step(pid) >= _IN_STEP
            and self._timing_tells()
        )

    def out_of_step(self, pid: int) -> bool:
        """Seen writing, again and again, at moments the burst's folders did not change
        (never with a protected file open): it writes somewhere else."""
        w = self.seen[pid]
        return (
            not w.opened
            and len(w.writes) >= _MIN_WRITES
            and self.in_step(pid) <= _OUT_OF_STEP
            and self._timing_tells()
        )

    def cleared(self, pid: int) -> bool:
        """Seen enough to say it is not touching the protected folder (or it exited)."""
        w = self.seen[pid]
        return not w.opened and (w.gone or self.out_of_step(pid))

    def _leader(self) -> int | None:
        """The contender whose share of writes in step leads every other's by ``_LEAD``."""
        shares = sorted(
            ((self.in_step(p), p) for p, w in self.seen.items() if len(w.writes) >= _MIN_WRITES),
            reverse=True,
        )
        if not shares or not self._timing_tells():
            return None
        if len(shares) == 1 or shares[0][0] - shares[1][0] >= _LEAD:
            return shares[0][1] if shares[0][0] >= _IN_STEP else None
        return None

    def decided(self) -> bool:
        """One contender was seen holding a protected file open; or one writes in step with
        the burst and every other has been seen enough not to."""
        if any(w.opened for w in self.seen.values()):
            return True
        touching = [p for p in self.seen if self.touching(p)]
        if len(touching) != 1:
            return False
        first = touching[0]
        return all(self.cleared(p) for p in self.seen if p != first) or self._leader() == first

    def ranked(self, found: Sequence[Candidate]) -> list[Candidate]:
        """``found`` again, the contenders seen touching the protected folder first (those
        seen holding a file of it open before those writing in step, then by the ranking),
        each with the files it was seen holding; a contender never seen touching it comes
        after every one that was, so it is never the one suspended while another was seen.
        When the watch could not tell (nobody seen, or all), a contender whose writes were in
        step with the burst clearly more often than every other's goes first; one seen
        writing out of step (:meth:`out_of_step`) goes after every contender that was not
        (the attacker may have finished or exited meanwhile: it is still the one to name);
        else the ranking stands."""
        lead = self._leader()

        def key(c: Candidate) -> tuple[int, int, int, int]:
            if c.pid not in self.seen:
                return (0, 0, 0, 0)
            return (
                int(bool(self.seen[c.pid].opened)),
                int(self.touching(c.pid)),
                int(c.pid == lead),
                int(not self.out_of_step(c.pid)),
            )

        out = []
        for c in found:
            held = c.open_files or tuple(self.seen[c.pid].opened if c.pid in self.seen else ())
            out.append(replace(c, open_files=held))
        out.sort(key=key, reverse=True)  # stable: the ranking within each group stands
        return out


def settle(
    found: list[Candidate],
    *,
    sampler: IoSampler,
    roots: Sequence[str],
    dirs: Iterable[str],
    exclude: Iterable[int],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    window: float = 0.3,
    step: float = 0.0002,
    look_every: float = 0.1,
) -> tuple[list[Candidate], ContenderWatch | None]:
    """When the evidence is weak (:func:`contenders`), watch the contenders for up to
    ``window`` seconds, a sample every ``step``, until one is seen touching the protected
    folder (:class:`ContenderWatch`); every ``look_every`` seconds, every process's counters
    are read again and any new writer that looks the part is watched too. The candidates
    (with those new ones) reordered by what was seen, and the watch (None when there was
    nothing to settle)."""
    rivals = contenders(found)
    if not rivals:
        return found, None
    out = list(found)
    skip = set(exclude)
    watch = ContenderWatch(sampler, rivals, roots, dirs)
    base = sampler.snapshot()
    start = clock()
    deadline = start + window
    next_look = start + look_every
    while clock() < deadline:
        sleep(step)
        watch.sample()
        if watch.decided():
            break
        if clock() >= next_look:
            fresh = rank_candidates(
                base,
                sampler.snapshot(),
                observed=0,
                exclude=skip | set(watch.seen),
                open_files=lambda pid: sampler.open_for_writing_under(pid, roots),
                max_candidates=_WATCH_TOP,
            )
            for c in fresh:
                if c.looks_the_part:
                    watch.add(c.pid)
                    for path in c.open_files:
                        watch.seen[c.pid].opened.setdefault(path, None)
                    out.append(c)
            next_look = clock() + look_every
    return watch.ranked(out), watch


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
