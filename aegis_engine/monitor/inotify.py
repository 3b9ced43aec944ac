"""Linux inotify(7) through ctypes: recursive watches on folder trees, read on one thread.

Why not watchdog's observer here: the ransomware shield needs each event as soon as the kernel
has it (watchdog holds every event behind an unpaired rename for up to 0.5 s and passes events
through three threads), an exact signal when the kernel's queue overflows, and an exact error
when the watch limit (``fs.inotify.max_user_watches``) is reached (watchdog skips such folders
silently). watchdog's observers remain the backend on other systems and the polling fallback.

Symbolic links are never followed (no loops); folders that cannot be read are reported once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import stat
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import MonitorError
from .fsevents import FsEvent, FsKind, ProblemSink

__all__ = ["AddResult", "Inotify", "InotifyTree", "available", "max_user_watches"]

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

WATCH_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)

_HEADER = struct.Struct("iIII")
_READ_SIZE = 256 * 1024
_MOVE_PAIR_TIMEOUT = 0.05
MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"


def max_user_watches() -> int | None:
    """The per-user watch limit, or None if unknown."""
    try:
        with open(MAX_USER_WATCHES) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch = libc.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        self.rm_watch.restype = ctypes.c_int


def available() -> bool:
    """True where inotify can be used (Linux with a libc that has it)."""
    if not os.path.exists("/proc/sys/fs/inotify"):
        return False
    try:
        _Libc()
    except (OSError, AttributeError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class RawEvent:
    wd: int
    mask: int
    cookie: int
    name: bytes


class Inotify:
    """One inotify instance. ``read`` blocks up to a timeout; ``wake`` interrupts it."""

    def __init__(self) -> None:
        self._libc = _Libc()
        fd = self._libc.init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            if err == errno.EMFILE:
                raise MonitorError(
                    "inotify instance limit reached (fs.inotify.max_user_instances); "
                    "close other programs that watch files or raise the limit"
                )
            raise MonitorError(f"cannot create an inotify instance: {os.strerror(err)}")
        self.fd = fd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)
        self._poller.register(self._wake_r, select.POLLIN)
        self.closed = False

    def add_watch(self, path: bytes, mask: int = WATCH_MASK) -> int:
        """Watch a folder; raises OSError with the errno (ENOSPC: watch limit reached)."""
        wd: int = self._libc.add_watch(self.fd, path, mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fsdecode(path))
        return wd

    def rm_watch(self, wd: int) -> None:
        self._libc.rm_watch(self.fd, wd)

    def read(self, timeout: float | None) -> list[RawEvent]:
        """Events ready now or within ``timeout`` seconds (None: wait until woken)."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        try:
            ready = self._poller.poll(ms)
        except InterruptedError:  # pragma: no cover - PEP 475 retries poll
            return []
        if not ready:
            return []
        for fd, _ in ready:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
        try:
            data = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return []
        return list(_parse(data))

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in (self.fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _parse(data: bytes) -> Iterator[RawEvent]:
    offset = 0
    size = _HEADER.size
    while offset + size <= len(data):
        wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
        name = data[offset + size : offset + size + length].rstrip(b"\0")
        offset += size + length
        yield RawEvent(wd, mask, cookie, name)


@dataclass
class AddResult:
    """What watching one root achieved."""

    root: str
    watched: int = 0
    denied: list[str] = field(default_factory=list)
    limit_reached: bool = False
    unwatched: int = 0
    """Folders that could not be watched because the watch limit was reached."""


@dataclass
class _Root:
    path: str
    present: bool = True
    limit_reached: bool = False


class InotifyTree:
    """Recursive watches on one or more folder trees (roots must not nest), one fd, one reader.

    ``read`` turns raw events into :class:`FsEvent` batches: it pairs renames, watches new
    folders (and reports the files already inside them), reports overflow per root, notices
    deleted roots and, via :meth:`check_roots`, roots that came back.
    """

    def __init__(
        self,
        *,
        skip: Callable[[str], bool] = lambda _p: False,
        on_problem: ProblemSink | None = None,
        inotify: Inotify | None = None,
    ) -> None:
        self._ino = inotify or Inotify()
        self._skip = skip
        self._problem = on_problem or (lambda _c, _m, _p: None)
        self._roots: dict[str, _Root] = {}
        self._wd_path: dict[int, str] = {}
        self._path_wd: dict[str, int] = {}
        self._wd_root: dict[int, str] = {}
        self._pending_from: dict[int, tuple[float, RawEvent, str, str]] = {}
        self._reported_denied: set[str] = set()

    # -- roots ---------------------------------------------------------------------------------
    @property
    def roots(self) -> list[str]:
        return list(self._roots)

    @property
    def watch_count(self) -> int:
        return len(self._wd_path)

    def missing_roots(self) -> list[str]:
        return [r.path for r in self._roots.values() if not r.present]

    def add_root(self, root: str) -> AddResult:
        """Watch ``root`` and every folder below it. A missing root is watched once it exists."""
        state = self._roots.setdefault(root, _Root(root))
        if not os.path.isdir(root):
            state.present = False
            return AddResult(root)
        state.present = True
        result = AddResult(root)
        for _ in self._add_tree(root, root, result):
            pass
        state.limit_reached = result.limit_reached
        return result

    def remove_root(self, root: str) -> None:
        self._drop_below(root, rm=True)
        self._roots.pop(root, None)

    def _add_tree(self, top: str, root: str, result: AddResult) -> Iterator[tuple[str, bool]]:
        """Watch ``top`` and its subfolders; yield ``(path, is_dir)`` of what is inside."""
        seen: set[tuple[int, int]] = set()
        stack = [top]
        while stack:
            folder = stack.pop()
            if self._skip(folder):
                continue
            try:
                st = os.lstat(folder)
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            if result.limit_reached:
                result.unwatched += 1
            else:
                self._watch(folder, root, result)
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except PermissionError:
                self._denied(folder, result)
                continue
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                yield entry.path, is_dir
                if is_dir:
                    stack.append(entry.path)

    def _watch(self, folder: str, root: str, result: AddResult) -> None:
        try:
            wd = self._ino.add_watch(os.fsencode(folder))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                result.limit_reached = True
                result.unwatched += 1
            elif exc.errno in (errno.EACCES, errno.EPERM):
                self._denied(folder, result)
            # ENOENT / ENOTDIR: it vanished while we walked; its parent's events cover it.
            return
        old = self._wd_path.get(wd)
        if old is not None and old != folder:
            self._path_wd.pop(old, None)
        self._wd_path[wd] = folder
        self._path_wd[folder] = wd
        self._wd_root[wd] = root
        result.watched += 1

    def _denied(self, folder: str, result: AddResult) -> None:
        result.denied.append(folder)
        if folder not in self._reported_denied:
            self._reported_denied.add(folder)
            self._problem(
                "permission-denied",
                "cannot watch or read this folder (permission denied); files in it are "
                "not scanned on access",
                folder,
            )

    def _drop_below(self, prefix: str, *, rm: bool) -> None:
        below = prefix + os.sep
        for path in [p for p in self._path_wd if p == prefix or p.startswith(below)]:
            wd = self._path_wd.pop(path)
            self._wd_path.pop(wd, None)
            self._wd_root.pop(wd, None)
            if rm:
                self._ino.rm_watch(wd)

    def _rename_below(self, src: str, dest: str) -> None:
        below = src + os.sep
        for path in [p for p in self._path_wd if p == src or p.startswith(below)]:
            wd = self._path_wd.pop(path)
            new = dest + path[len(src) :]
            self._wd_path[wd] = new
            self._path_wd[new] = wd

    def check_roots(self) -> list[FsEvent]:
        """Watch again the roots that were deleted and exist again."""
        out: list[FsEvent] = []
        for state in list(self._roots.values()):
            if state.present or not os.path.isdir(state.path):
                continue
            result = AddResult(state.path)
            state.present = True
            created = list(self._add_tree(state.path, state.path, result))
            state.limit_reached = result.limit_reached
            out.append(FsEvent(FsKind.ROOT_BACK, state.path, state.path, is_dir=True))
            out.extend(FsEvent(FsKind.CREATED, p, state.path, is_dir=d) for p, d in created)
        return out

    # -- events --------------------------------------------------------------------------------
    def wake(self) -> None:
        self._ino.wake()

    def close(self) -> None:
        self._ino.close()
        self._wd_path.clear()
        self._path_wd.clear()
        self._wd_root.clear()

    def read(self, timeout: float | None) -> list[FsEvent]:
        """The next batch of events (empty after ``timeout`` seconds, or when woken)."""
        if self._pending_from:
            timeout = _MOVE_PAIR_TIMEOUT if timeout is None else min(timeout, _MOVE_PAIR_TIMEOUT)
        raw = self._ino.read(timeout)
        out: list[FsEvent] = []
        for ev in raw:
            self._translate(ev, out)
        self._flush_unpaired(out, force=not raw)
        return out

    def _flush_unpaired(self, out: list[FsEvent], *, force: bool) -> None:
        if not self._pending_from:
            return
        now = time.monotonic()
        for cookie, (since, ev, path, root) in list(self._pending_from.items()):
            if force or now - since >= _MOVE_PAIR_TIMEOUT:
                del self._pending_from[cookie]
                is_dir = bool(ev.mask & IN_ISDIR)
                if is_dir:
                    self._drop_below(path, rm=True)
                out.append(FsEvent(FsKind.MOVED_OUT, path, root, is_dir=is_dir))

    def _translate(self, ev: RawEvent, out: list[FsEvent]) -> None:
        mask = ev.mask
        if mask & IN_Q_OVERFLOW:
            out.extend(FsEvent(FsKind.OVERFLOW, r, r, is_dir=True) for r in self._roots)
            return
        folder = self._wd_path.get(ev.wd)
        root = self._wd_root.get(ev.wd)
        if mask & IN_IGNORED:
            if folder is not None:
                self._wd_path.pop(ev.wd, None)
                self._wd_root.pop(ev.wd, None)
                if self._path_wd.get(folder) == ev.wd:
                    del self._path_wd[folder]
            return
        if folder is None or root is None:
            return
        if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT):
            if folder == root and root in self._roots:
                self._drop_below(root, rm=bool(mask & IN_MOVE_SELF))
                self._roots[root].present = False
                out.append(FsEvent(FsKind.ROOT_GONE, root, root, is_dir=True))
            return
        path = os.path.join(folder, os.fsdecode(ev.name)) if ev.name else folder
        if self._skip(path):
            return
        is_dir = bool(mask & IN_ISDIR)
        if mask & IN_MOVED_FROM:
            self._pending_from[ev.cookie] = (time.monotonic(), ev, path, root)
            return
        if mask & IN_MOVED_TO:
            src = self._pending_from.pop(ev.cookie, None)
            if src is not None:
                if is_dir:
                    self._rename_below(src[2], path)
                out.append(FsEvent(FsKind.MOVED, src[2], root, dest=path, is_dir=is_dir))
            else:
                out.append(FsEvent(FsKind.MOVED_IN, path, root, is_dir=is_dir))
                if is_dir:
                    self._add_new_dir(path, root, out, FsKind.MOVED_IN)
            return
        if mask & IN_CREATE:
            out.append(FsEvent(FsKind.CREATED, path, root, is_dir=is_dir))
            if is_dir:
                self._add_new_dir(path, root, out, FsKind.CREATED)
        elif mask & IN_CLOSE_WRITE:
            out.append(FsEvent(FsKind.CLOSED, path, root))
        elif mask & IN_MODIFY:
            if not is_dir:
                out.append(FsEvent(FsKind.MODIFIED, path, root))
        elif mask & IN_DELETE:
            out.append(FsEvent(FsKind.DELETED, path, root, is_dir=is_dir))

    def _add_new_dir(self, path: str, root: str, out: list[FsEvent], kind: FsKind) -> None:
        """Watch a folder that appeared; report what is already inside it as ``kind``."""
        result = AddResult(root)
        for inner, is_dir in self._add_tree(path, root, result):
            out.append(FsEvent(kind, inner, root, is_dir=is_dir))
        if result.limit_reached and not self._roots[root].limit_reached:
            self._roots[root].limit_reached = True
            limit = max_user_watches()
            self._problem(
                "inotify-limit",
                f"inotify watch limit reached (fs.inotify.max_user_watches={limit}): "
                f"{result.unwatched} new folder(s) below this root are not watched in real time",
                path,
            )
