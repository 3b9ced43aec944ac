"""The ransomware shield: notice mass encryption in protected folders from behaviour alone,
and suspend the process doing it at once.

What counts (all in protected folders, over a sliding ``burst_window``, 20 s):

* **encrypted write** - a file closed after writing (or moved in) whose first 4 KiB have
  near-random entropy (>= 7.35 bits/byte for 4 KiB) and no known file signature;
* **destroyed file** - a file that existed before the burst (was not created inside the
  window) deleted, renamed to an unknown extension, moved out, or rewritten in place with
  encrypted content;
* **canary** - a decoy Aegis planted (see :mod:`.canary`) rewritten or renamed: conclusive
  on its own; a canary deleted makes one further encrypted write enough.

A burst is ``min_encrypted_writes`` (2) encrypted writes together with ``min_destroyed`` (1)
destroyed file. That is the earliest point at which "reads files, writes encrypted copies,
deletes the originals" can be told apart from one encrypted download or from ordinary
deletions: one encrypted file, or any number of deletions without encrypted writes
(``rm -rf``, ``git checkout``, ``tar --remove-files``), never trigger it; compressed output
(tar.gz, zip, docx, jpeg) carries a signature and is not "encrypted".

Who: per-process I/O counters (:mod:`.attribution`) are read when a burst starts (the
baseline, refreshed when older than 2 s) and when it completes. Events arrive in batches,
so only encrypted bytes seen in batches read after the baseline count as "observed". Every
process that wrote at least a page since is a candidate, ranked by: holds a file of the
protected folder open for writing (one only read, by a scanner or an indexer, is not
evidence); has both ransomware traits (reads about as many bytes as it writes, and writes in
bulk rather than many small messages); wrote an amount closest to what the
burst wrote. When no candidate holds a file open or shows both traits, the counters are
watched for up to 100 ms (every 4 ms) and the first process that does is taken. When two or
more look the part and the first holds no protected file open (an identical program writing as
much elsewhere on a busy machine), they are watched for up to 0.3 s, a sample every 0.2 ms:
one seen holding a protected file, or whose write() counter grows in step with the folders the
burst is changing, goes first, and one never seen touching the folder is never suspended while
another was (:func:`.attribution.settle`). The first candidate, its descendants, and any
other candidate holding a protected file open are
suspended (SIGSTOP / NtSuspendProcess) at once, on the event thread; the alert follows
``report_delay`` (0.25 s) later with every file touched so far, and the user chooses kill or
resume (:meth:`RansomwareShield.resolve`). A canary changed while no baseline exists waits for
the next operation (at most 1 s) before attributing. Names, paths and command lines of
processes are never used.
"""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from .attribution import Candidate, IoSampler, IoSnapshot, ProcessControl, rank_candidates
from .bursts import BurstDetector, Op, unknown_extension_change
from .canary import CanarySet
from .content_signs import looks_encrypted
from .events import ErrorEvent, MonitorEvent, ProcessRef, RansomwareEvent
from .fsevents import FsEvent, FsKind
from .incidents import Incident, first_action, incident_event, plausible
from .options import MonitorOptions
from .worker import Worker


def _own_descendants() -> set[int]:
    """Aegis's own helper processes: the scan workers and multiprocessing's fork server
    (each started by ``multiprocessing``, which names itself on their command line)."""
    try:
        import psutil
    except ImportError:
        return set()
    own: set[int] = set()
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return own
    for child in children:
        try:
            if any("from multiprocessing." in part for part in child.cmdline()):
                own.add(child.pid)
        except psutil.Error:
            continue  # gone meanwhile
    return own


__all__ = ["BurstDetector", "Incident", "Op", "RansomwareShield"]

log = logging.getLogger(__name__)

EmitFn = Callable[[MonitorEvent], None]

_BASELINE_MAX_AGE = 2.0
"""A burst's baseline of write counters is refreshed when older than this (seconds)."""
_RECENT_MAX = 16_384
_PROBE = 0.1
"""Longest time to watch write counters when the baseline does not tell who it is."""
_PROBE_STEP = 0.004
_JOIN_UNATTRIBUTED = 10.0
_GONE = -1
_VANISHED_MAX = 1024
_CANARY_WAIT = 1.0
"""After a canary changed with no baseline, wait this long for one more operation before
attributing by watching write counters for a moment instead."""
"""A burst with no writer left within this many seconds of an incident joins it."""


class RansomwareShield(Worker):
    """Watches protected folders. :meth:`observe` runs on the event source's thread (it must
    be fast: it suspends); alerts go out from the ``aegis-shield`` thread."""

    thread_name = "aegis-shield"

    def __init__(
        self,
        roots: Sequence[str],
        *,
        options: MonitorOptions,
        emit: EmitFn,
        canaries: CanarySet | None = None,
        sampler: IoSampler | None = None,
        control: ProcessControl | None = None,
        guard: Callable[[int], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.roots = [r.rstrip(os.sep) or os.sep for r in roots]
        self._prefixes = tuple(r.rstrip(os.sep) + os.sep for r in self.roots)
        self._opt = options
        self._emit = emit
        self.canaries = canaries
        self._sampler = sampler or IoSampler()
        self._control = control or ProcessControl()
        self._guard = guard
        self._clock = clock
        self._detector = BurstDetector(
            options.burst_window, options.min_encrypted_writes, options.min_destroyed
        )
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._vanished: OrderedDict[str, bool] = OrderedDict()
        self._baseline: IoSnapshot | None = None
        self._baseline_at = 0.0
        self._bytes_since_baseline = 0
        self._batch = 0
        self._baseline_batch = 0
        self._own: dict[str, float] = {}
        self._self_pids = {os.getpid()}
        self._ids = itertools.count(1)
        self._lock = threading.Condition()
        self.incidents: dict[str, Incident] = {}
        self._active: Incident | None = None
        self._last: Incident | None = None
        self._op_lock = threading.RLock()
        self._pending: tuple[str, Op, float] | None = None
        self._stopping = False
        self.triggers = 0
        self.watches = 0
        """Bursts whose first candidates had to be watched to be told apart."""

    # -- setup ---------------------------------------------------------------------------------
    def protects(self, path: str) -> bool:
        return path in self.roots or path.startswith(self._prefixes)

    def root_of(self, path: str) -> str:
        for r, p in zip(self.roots, self._prefixes, strict=True):
            if path == r or path.startswith(p):
                return r
        return path

    def plant_canaries(self) -> None:
        if self.canaries is None or not self._opt.canaries:
            return
        self.canaries.remove_stale()
        for root in self.roots:
            if os.path.isdir(root):
                self.canaries.plant(root)

    def expect_own_change(self, path: str) -> None:
        """Aegis itself is about to move or delete ``path`` (e.g. quarantine): ignore it."""
        self._own[path] = self._clock() + 10.0

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()

    # -- events (source thread) ----------------------------------------------------------------
    def observe(self, batch: Sequence[FsEvent]) -> None:
        self._batch += 1
        for ev in batch:
            if ev.polled or ev.is_dir:
                if ev.kind is FsKind.ROOT_BACK and self.protects(ev.path):
                    self._root_back(ev.path)
                elif ev.kind is FsKind.ROOT_GONE and self.canaries is not None:
                    self.canaries.forget_below(ev.path)
                continue
            if not self.protects(ev.path) and not (ev.dest and self.protects(ev.dest)):
                continue
            try:
                self._observe_one(ev)
            except Exception:  # never let one odd file stop the shield
                log.exception("ransomware shield: cannot evaluate %s", ev.path)

    def _root_back(self, root: str) -> None:
        if self.canaries is not None and self._opt.canaries:
            self.canaries.plant(root)

    def _own_change(self, path: str, now: float) -> bool:
        if not self._own:
            return False
        until = self._own.get(path)
        if until is None:
            return False
        if until < now:
            del self._own[path]
            return False
        return True

    def _observe_one(self, ev: FsEvent) -> None:
        now = self._clock()
        path = ev.path
        canaries = self.canaries
        if canaries is not None and canaries.is_own_temp(path):
            return
        if self._own_change(path, now):
            return
        is_canary = canaries is not None and canaries.is_canary(path)
        kind = ev.kind
        if kind is FsKind.CREATED:
            self._remember(path, now)
        elif kind is FsKind.MODIFIED:
            if is_canary:
                self._op(Op(now, "canary", path, self.root_of(path)))
        elif kind is FsKind.CLOSED or kind is FsKind.MOVED_IN:
            if is_canary:
                self._op(Op(now, "canary", path, self.root_of(path)))
                return
            existed = kind is FsKind.CLOSED and path not in self._recent
            if kind is FsKind.MOVED_IN:
                self._remember(path, now)
            size = self._encrypted_size(path)
            if size == _GONE:  # renamed already: judged when its rename event comes
                self._vanished[path] = existed
                while len(self._vanished) > _VANISHED_MAX:
                    self._vanished.popitem(last=False)
            elif size is not None:
                root = self.root_of(path)
                self._op(Op(now, "encrypted", path, root, size))
                if existed:
                    self._op(Op(now, "destroyed", path, root))
        elif kind is FsKind.DELETED or kind is FsKind.MOVED_OUT:
            if is_canary:
                self._op(Op(now, "canary-deleted", path, self.root_of(path)))
            elif self._recent.pop(path, None) is None:
                self._op(Op(now, "destroyed", path, self.root_of(path)))
        elif kind is FsKind.MOVED:
            dest = ev.dest or path
            if is_canary:
                self._op(Op(now, "canary", path, self.root_of(path)))
                return
            src_protected = self.protects(path)
            dest_protected = self.protects(dest)
            fresh = self._recent.pop(path, None) is not None
            if dest_protected:
                self._remember(dest, now)
            if (
                src_protected
                and not fresh
                and (not dest_protected or unknown_extension_change(path, dest))
            ):
                self._op(Op(now, "destroyed", path, self.root_of(path)))
            written = self._vanished.pop(path, None)
            if dest_protected and (
                not src_protected or written is not None or unknown_extension_change(path, dest)
            ):
                size = self._encrypted_size(dest)
                if size is not None and size != _GONE:
                    root = self.root_of(dest)
                    self._op(Op(now, "encrypted", dest, root, size))
                    if written:  # an existing file rewritten encrypted, then renamed
                        self._op(Op(now, "destroyed", path, root))

    def _remember(self, path: str, now: float) -> None:
        recent = self._recent
        recent[path] = now
        recent.move_to_end(path)
        window = self._opt.burst_window
        while recent:
            first = next(iter(recent.values()))
            if len(recent) > _RECENT_MAX or now - first > window:
                recent.popitem(last=False)
            else:
                break

    def _encrypted_size(self, path: str) -> int | None:
        """The file's size if it looks encrypted, ``_GONE`` if it is not there any more,
        else None."""
        opt = self._opt
        try:
            fd = os.open(
                path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            )
        except FileNotFoundError:
            return _GONE
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_size < opt.min_sample or not stat.S_ISREG(st.st_mode):
                return None
            head = os.read(fd, opt.sample_size)
        except OSError:
            return None
        finally:
            os.close(fd)
        if looks_encrypted(head, margin=opt.entropy_margin, min_sample=opt.min_sample):
            return int(st.st_size)
        return None

    # -- bursts --------------------------------------------------------------------------------
    def _op(self, op: Op) -> None:
        with self._op_lock:
            self._op_locked(op)

    def _op_locked(self, op: Op) -> None:
        active = self._active
        if active is not None and op.t <= active.until:
            with self._lock:
                active.add_file(op.path, self._opt.max_incident_files)
            return
        if self._detector.quiet(op.t) and self._pending is None:
            self._baseline = None
        why = self._detector.add(op)
        later_batch = self._baseline is not None and self._batch > self._baseline_batch
        # Events are read in batches: everything in the batch during which the baseline was
        # taken happened before it, so only operations of later batches add to the bytes
        # the culprit must have written since the baseline.
        if op.kind == "encrypted" and later_batch:
            self._bytes_since_baseline += op.size
        pending = self._pending
        if pending is not None and later_batch:
            self._trigger(pending[0], pending[1])  # the canary, now with something to compare
            return
        if why is not None and self._bytes_since_baseline > 0:
            self._trigger(why, op)
            return
        if why is not None:
            # Complete, but no write since a baseline to attribute it by: take one now and
            # decide on the next operation (it comes within milliseconds in an attack).
            if self._baseline is None:
                self._take_baseline(op.t)
            if why == "canary" and pending is None:
                with self._lock:
                    self._pending = (why, op, self._clock() + _CANARY_WAIT)
                    self._lock.notify_all()
            return
        if self._baseline is None or op.t - self._baseline_at > _BASELINE_MAX_AGE:
            self._take_baseline(op.t)

    def _take_baseline(self, now: float) -> None:
        self._baseline = self._sampler.snapshot()
        self._baseline_at = now
        self._baseline_batch = self._batch
        self._bytes_since_baseline = 0

    def _candidates(self) -> list[Candidate]:
        roots = self.roots
        # Aegis itself, and its scan workers: they read the files on-access scanning is
        # given, decoys included.
        exclude = self._self_pids | _own_descendants() | self._suspended_pids()

        def open_files(pid: int) -> list[str]:
            # open for writing: a scanner or an indexer reading the folder is not evidence
            return self._sampler.open_for_writing_under(pid, roots)

        after = self._sampler.snapshot()
        found: list[Candidate] = []
        if self._baseline is not None:
            found = rank_candidates(
                self._baseline,
                after,
                observed=self._bytes_since_baseline,
                exclude=exclude,
                open_files=open_files,
            )
            if plausible(found):
                return self._settle(found)
        # No baseline (a canary was the first sign), or the writes seen so far are not in
        # the counters yet, or no writer looks the part: watch the counters for a moment;
        # an attack in progress shows up within milliseconds.
        base = self._baseline if self._baseline is not None else after
        deadline = time.monotonic() + _PROBE
        while time.monotonic() < deadline:
            time.sleep(_PROBE_STEP)
            probe = rank_candidates(
                base, self._sampler.snapshot(), observed=0, exclude=exclude, open_files=open_files
            )
            if plausible(probe):
                return self._settle(probe)
            if probe and (not found or probe[0].score(0) > found[0].score(0)):
                found = probe
        return found

    def _settle(self, found: list[Candidate]) -> list[Candidate]:
        """When the first candidates are not separated by a protected file held open, watch
        them (up to 0.3 s) against the folders this burst is changing: the one seen holding a
        protected file, or writing in step with the burst, goes first; one never seen
        touching the folder is never suspended while another was (see
        :func:`.attribution.settle`)."""
        from .attribution import settle

        recent = list(self._detector.ops)[-64:]
        dirs = {os.path.dirname(o.path) for o in recent}
        settled, watch = settle(
            found,
            sampler=self._sampler,
            roots=self.roots,
            dirs=dirs,
            exclude=self._self_pids | _own_descendants() | self._suspended_pids(),
            clock=time.monotonic,
            sleep=time.sleep,
        )
        if watch is not None:
            self.watches += 1
            seen = watch.seen.items()
            log.debug(
                "ransomware shield: watched %s for %d samples (chance %.2f): %s",
                [c.pid for c in found[:4]],
                watch.samples,
                watch.chance(),
                {p: (len(w.opened), len(w.writes), watch.in_step(p)) for p, w in seen},
            )
        return settled

    def _suspended_pids(self) -> set[int]:
        with self._lock:
            return {
                p.pid
                for i in self.incidents.values()
                if i.resolved is None
                for p in i.processes
                if p.outcome == "suspended"
            }

    def _trigger(self, why: str, op: Op) -> None:
        with self._lock:
            self._pending = None
        self.triggers += 1
        candidates = self._candidates()
        ops = self._detector.reset()
        self._baseline = None
        # Suspend only a process that looks the part (holds a protected file open, or reads
        # about as much as it writes, in bulk): the heaviest writer of a busy machine is not
        # evidence, and suspending an innocent program is a fault of its own. Without one,
        # the incident is reported unattributed.
        chosen = (
            candidates[:1] + [c for c in candidates[1:3] if c.open_files]
            if plausible(candidates)
            else []
        )
        refs: list[ProcessRef] = []
        for cand in chosen:
            refs.extend(self._stop_tree(cand.pid))
        now = self._clock()
        last = self._last
        if not refs and last is not None and now - last.report_at < _JOIN_UNATTRIBUTED:
            # Nobody is writing any more: these are late events of the last incident.
            with self._lock:
                for o in ops:
                    last.add_file(o.path, self._opt.max_incident_files)
                last.until = now + self._opt.cooldown
                self._active = last
            return
        incident = Incident(
            id=f"R{next(self._ids)}",
            root=op.root,
            reasons=[why],
            started=time.time(),
            report_at=now + self._opt.report_delay,
            until=now + self._opt.cooldown,
        )
        for o in ops:
            incident.add_file(o.path, self._opt.max_incident_files)
        incident.processes = refs
        with self._lock:
            self.incidents[incident.id] = incident
            self._active = incident
            self._last = incident
            self._lock.notify_all()

    def _stop_tree(self, pid: int) -> list[ProcessRef]:
        if self._guard is not None and not self._guard(pid):
            return [self._control.describe(pid, "refused")]
        outcome = self._control.suspend(pid)
        refs = [(pid, outcome)]
        if outcome == "suspended":
            for child in self._control.children(pid):
                if self._guard is None or self._guard(child):
                    refs.append((child, self._control.suspend(child)))
        return [self._control.describe(p, o) for p, o in refs]

    # -- alerts (shield thread) ----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            fire = False
            with self._lock:
                now = self._clock()
                waiting = [i for i in self.incidents.values() if not i.reported]
                if self._stopping:
                    due = waiting
                else:
                    due = [i for i in waiting if i.report_at <= now]
                    fire = self._pending is not None and self._pending[2] <= now
                    if not due and not fire:
                        waits = [i.report_at - now for i in waiting]
                        if self._pending is not None:
                            waits.append(self._pending[2] - now)
                        self._lock.wait(min(waits, default=None))
                        continue
                for inc in due:
                    inc.reported = True
                events = [self._event(inc, first_action(inc)) for inc in due]
                stopping = self._stopping
            if fire:
                with self._op_lock:
                    pending = self._pending
                    if pending is not None:
                        self._trigger(pending[0], pending[1])
            for event in events:
                self._emit(event)
                for p in event.processes if event.action == "suspend-failed" else ():
                    self._emit(
                        ErrorEvent(
                            code="action-failed",
                            message=f"could not suspend process {p.pid}: {p.outcome}"
                            + (
                                " (no permission: it belongs to another user)"
                                if p.outcome == "denied"
                                else ""
                            ),
                            pid=p.pid,
                            path=event.path,
                        )
                    )
            if stopping:
                return

    def _event(self, inc: Incident, action: str) -> RansomwareEvent:
        return incident_event(inc, action)

    # -- the user's choice ---------------------------------------------------------------------
    def resolve(self, incident_id: str, choice: str) -> RansomwareEvent:
        """Kill or resume the processes of an incident; the event is also emitted."""
        if choice not in ("kill", "resume"):
            raise ValueError("choice must be 'kill' or 'resume'")
        with self._lock:
            inc = self.incidents.get(incident_id)
            if inc is None:
                raise KeyError(incident_id)
            targets = [p for p in inc.processes if p.outcome == "suspended"]
        done = []
        for p in targets:
            outcome = self._control.kill(p.pid) if choice == "kill" else self._control.resume(p.pid)
            done.append(ProcessRef(p.pid, p.name, p.exe, outcome, p.user))
        with self._lock:
            inc.processes = done + [p for p in inc.processes if p.outcome != "suspended"]
            inc.resolved = choice
            if self._active is inc:
                self._active = None
        event = self._event(inc, "killed" if choice == "kill" else "resumed")
        self._emit(event)
        return event

    def pending(self) -> list[Incident]:
        """Incidents whose processes are still suspended, waiting for the user's choice."""
        with self._lock:
            return [
                i
                for i in self.incidents.values()
                if i.resolved is None and any(p.outcome == "suspended" for p in i.processes)
            ]
