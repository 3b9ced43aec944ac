"""File operations that never follow symbolic links (POSIX).

Every operation on a user's file starts by opening its folder one component at a time from
``/`` with ``O_NOFOLLOW | O_DIRECTORY``; a symlink anywhere on the way is refused. The work
is then done relative to that folder's descriptor (``openat``, ``unlinkat``, ``linkat``), so a
folder swapped for a symlink afterwards cannot redirect it (ClamAV CVE-2020-3350, AVGater).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import QuarantineError, UnsafePathError

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC


def printable(path: str | bytes | os.PathLike[str]) -> str:
    """A path for messages and JSON: undecodable bytes shown as ``\\xNN``, never an error."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class FileIdentity:
    """Which file a path named when it was scanned: device and inode."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino)


def split(path: str | os.PathLike[str]) -> tuple[list[str], str]:
    """The folder components (from ``/``) and the final name of an absolute path.

    ``..`` is resolved lexically, which is only sound because no component may be a symlink.
    """
    full = os.path.abspath(os.fspath(path))
    parts = [p for p in full.split(os.sep) if p]
    if not parts:
        raise QuarantineError(f"not a file path: {printable(full)}")
    return parts[:-1], parts[-1]


def _walk(parts: list[str]) -> int:
    fd = os.open(os.sep, _DIR_FLAGS)
    walked = ""
    try:
        for part in parts:
            walked += os.sep + part
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    with contextlib.suppress(OSError):
                        if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                            raise UnsafePathError(
                                f"refusing to follow a symbolic link: {printable(walked)}"
                            ) from None
                    raise QuarantineError(f"not a folder: {printable(walked)}") from None
                if exc.errno == errno.ENOENT:
                    raise QuarantineError(f"folder does not exist: {printable(walked)}") from None
                raise QuarantineError(f"cannot open folder {printable(walked)}: {exc}") from exc
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def open_dir(path: str | os.PathLike[str]) -> Iterator[int]:
    """A descriptor of the folder ``path``, reached without following any symlink."""
    parts, name = split(path)
    fd = _walk([*parts, name])
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_parent(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """``(descriptor of the folder holding path, final name)``, without following symlinks."""
    parts, name = split(path)
    fd = _walk(parts)
    try:
        yield fd, name
    finally:
        os.close(fd)


def lstat_in(dir_fd: int, name: str) -> os.stat_result | None:
    """``lstat`` of ``name`` in the folder, or None when nothing has that name."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_regular(dir_fd: int, name: str, shown: str) -> int:
    """Open a regular file for reading; refuse symlinks, FIFOs, devices and folders."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"refusing to follow a symbolic link: {shown}") from None
        if exc.errno == errno.ENOENT:
            raise QuarantineError(f"file does not exist: {shown}") from None
        raise QuarantineError(f"cannot open {shown}: {exc}") from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise QuarantineError(f"not a regular file: {shown}")
    return fd


def create_exclusive(dir_fd: int, name: str, mode: int = 0o600) -> int:
    """Create a new file; fail if anything (a file, a symlink) already has the name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC
    fd = os.open(name, flags, mode, dir_fd=dir_fd)
    os.fchmod(fd, mode)
    return fd


def fsync_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.fsync(fd)


def restore_names(name: str) -> Iterator[str]:
    """``name``, then ``stem (restored).ext``, ``stem (restored 2).ext``, ..."""
    yield name
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot:
        stem, ext = name, ""
    suffix = f".{ext}" if ext else ""
    yield f"{stem} (restored){suffix}"
    n = 2
    while True:
        yield f"{stem} (restored {n}){suffix}"
        n += 1


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed; refuse a symlink in its place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.mkdir(exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"vault folder is not a plain folder: {printable(path)}")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


_RENAME_NOREPLACE = 1
_NO_HARDLINKS = frozenset(
    {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS, errno.EACCES}
)


def _rename_noreplace(dir_fd: int, old: str, new: str) -> None:
    """``renameat2(RENAME_NOREPLACE)`` (Linux): an atomic rename that never replaces."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    if func(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), _RENAME_NOREPLACE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), new)


def link_noreplace(dir_fd: int, old: str, new: str) -> bool:
    """Give the file ``old`` the name ``new`` in the same folder, never replacing anything.

    Hard link first (``old`` stays; returns True); where the file system has no hard links,
    an atomic no-replace rename (``old`` is gone; returns False). Raises FileExistsError when
    ``new`` is taken.
    """
    try:
        os.link(old, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
    try:
        _rename_noreplace(dir_fd, old, new)
    except FileExistsError:
        raise
    except OSError as exc:
        raise QuarantineError(
            f"cannot restore without risking to overwrite a file in this folder ({exc}); "
            "restore to another folder with --to DIR"
        ) from exc
    return False
