"""Scan cache: a file unchanged since its last scan with the same signature set is not rescanned.

A file is "unchanged" when device, inode, size, mtime_ns and ctime_ns all match and the
signature-set version is the same. Only final results are cached (clean, suspicious,
malicious); incomplete and error results are scanned again next time.
The cache is only a cache: a damaged database (bad pages, not a database, a folder in its
place) is moved aside (``scan-cache.sqlite3.corrupt-<time>``) and rebuilt, with one warning;
a cache that cannot be opened or written (read-only profile, full disk) is skipped with one
warning, and the scan goes on without it. A row that cannot be understood is a cache miss.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..results import FileReport, Verdict
from ..setaside import move_aside

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    sigver TEXT NOT NULL, sha256 TEXT, report TEXT,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""
_BATCH = 512
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

Warn = Callable[[str], None]


def is_corruption(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged or not a database (not: busy, read-only, full)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


class _Damaged(Exception):
    """The cache file is there but is not a usable database."""


class ScanCache:
    """One connection; callers serialise access (one coordinating thread, or a lock).

    ``warn`` is told once when the cache was rebuilt or cannot be used; without a usable
    database every lookup is a miss and nothing is stored (:attr:`available` is False).
    """

    def __init__(self, path: Path, sigver: str, warn: Warn | None = None) -> None:
        self.path = path
        self.sigver = sigver
        self._warn_cb = warn
        self._warned = False
        self._pending: list[tuple[object, ...]] = []
        self._db: sqlite3.Connection | None = self._open()

    @property
    def available(self) -> bool:
        return self._db is not None

    def _warn(self, message: str) -> None:
        if self._warn_cb is not None and not self._warned:
            self._warned = True
            self._warn_cb(message)

    def _connect(self) -> sqlite3.Connection:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _Damaged("it is not a regular file")
        _private(self.path)  # 0600 like every profile file; SQLite's -wal/-shm follow
        db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("SELECT count(*) FROM files WHERE dev = -1").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                return self._connect()
            except (_Damaged, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.DatabaseError) and not is_corruption(exc):
                    raise
                aside = move_aside(self.path)
                self._warn(
                    f"the scan cache {self.path} was damaged ({exc}); it was moved to "
                    f"{aside.name} and a new one was started"
                )
                return self._connect()
        except (OSError, sqlite3.Error, _Damaged) as exc:
            self._warn(
                f"the scan cache {self.path} cannot be used ({_reason(exc)}); scanning every "
                "file without it"
            )
            return None

    def _fail(self, exc: sqlite3.Error) -> None:
        """A query failed: a damaged cache is set aside; either way it is not used again."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        if is_corruption(exc):
            try:
                aside = move_aside(self.path)
            except OSError:
                self._warn(f"the scan cache {self.path} is damaged ({exc}); not used")
                return
            self._warn(
                f"the scan cache {self.path} was damaged ({exc}); it was moved to "
                f"{aside.name} and will be rebuilt"
            )
        else:
            self._warn(f"the scan cache {self.path} cannot be used ({exc}); not used")

    def get(self, path: str, st: os.stat_result) -> FileReport | None:
        return self.get_many([(path, st)])[0]

    def get_many(self, files: Sequence[tuple[str, os.stat_result]]) -> list[FileReport | None]:
        """Look up several files in one query per device (a rescan does little else)."""
        rows: dict[tuple[int, int], tuple[Any, ...]] = {}
        if self._db is None:
            return [None] * len(files)
        by_dev: dict[int, list[int]] = {}
        for _, st in files:
            by_dev.setdefault(st.st_dev, []).append(st.st_ino)
        for dev, inodes in by_dev.items():
            for start in range(0, len(inodes), _BATCH):
                chunk = inodes[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                try:
                    found = self._db.execute(
                        "SELECT ino, size, mtime_ns, ctime_ns, sigver, sha256, report FROM files "
                        f"WHERE dev = ? AND ino IN ({marks})",
                        (dev, *chunk),
                    ).fetchall()
                except sqlite3.Error as exc:
                    self._fail(exc)
                    return [None] * len(files)
                for row in found:
                    rows[(dev, row[0])] = row[1:]
        return [self._safe_report(path, st, rows.get((st.st_dev, st.st_ino))) for path, st in files]

    def _safe_report(
        self, path: str, st: os.stat_result, row: tuple[Any, ...] | None
    ) -> FileReport | None:
        try:
            return self._report(path, st, row)
        except Exception:  # a row that cannot be understood is only a miss: scan again
            return None

    def _report(
        self, path: str, st: os.stat_result, row: tuple[Any, ...] | None
    ) -> FileReport | None:
        if row is None:
            return None
        size, mtime_ns, ctime_ns, sigver, sha256, report = row
        if (size, mtime_ns, ctime_ns, sigver) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            self.sigver,
        ):
            return None
        if report is None:
            return FileReport(
                path=path, verdict=Verdict.CLEAN, sha256=sha256, size=st.st_size, cached=True
            )
        try:
            data = json.loads(report)
        except ValueError:
            return None
        # Paths are stored relative to the file, so a renamed or hard-linked file still fits.
        data["path"] = path
        for obj in data.get("objects", []):
            obj["path"] = path + obj["path"]
        return FileReport.from_dict(data, cached=True)

    def put(self, report: FileReport, st: os.stat_result) -> None:
        if self._db is None or report.verdict in (Verdict.INCOMPLETE, Verdict.ERROR):
            return
        blob = None
        if report.objects:
            data = report.to_dict()
            data["path"] = ""
            for obj in data["objects"]:
                obj["path"] = obj["path"][len(report.path) :]
            blob = json.dumps(data, separators=(",", ":"))
        self._pending.append(
            (
                st.st_dev,
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
                self.sigver,
                report.sha256,
                blob,
            )
        )
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self._pending or self._db is None:
            self._pending.clear()
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._pending
                )
        except sqlite3.Error as exc:  # only costs a rescan next time
            if is_corruption(exc):
                self._fail(exc)
            else:
                self._warn(f"the scan cache {self.path} cannot be written ({exc})")
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _private(path: Path) -> None:
    """Create ``path`` 0600 if missing (SQLite would make it 0644 under a usual umask), and
    make an existing one 0600 again. Faults are left to SQLite to report, as before."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o777 != 0o600:
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
