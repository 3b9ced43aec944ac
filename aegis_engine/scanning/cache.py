"""Scan cache: a file unchanged since its last scan with the same signature set is not rescanned.

A file is "unchanged" when device, inode, size, mtime_ns and ctime_ns all match and the
signature-set version is the same. Only final results are cached (clean, suspicious,
malicious); incomplete and error results are scanned again next time.
The cache is only a cache: a damaged database is thrown away and rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results import FileReport, Verdict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    sigver TEXT NOT NULL, sha256 TEXT, report TEXT,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""
_BATCH = 512


class ScanCache:
    """One connection; callers serialise access (one coordinating thread, or a lock)."""

    def __init__(self, path: Path, sigver: str) -> None:
        self.path = path
        self.sigver = sigver
        self._pending: list[tuple[object, ...]] = []
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for attempt in range(2):
            try:
                _private(self.path)  # 0600 like every profile file; SQLite's -wal/-shm follow
                db = sqlite3.connect(
                    self.path, timeout=5, isolation_level=None, check_same_thread=False
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
                db.execute("SELECT count(*) FROM files WHERE dev = -1").fetchone()
                return db
            except sqlite3.DatabaseError:
                if attempt:
                    raise
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{self.path}{suffix}")
        raise AssertionError("unreachable")

    def get(self, path: str, st: os.stat_result) -> FileReport | None:
        return self.get_many([(path, st)])[0]

    def get_many(self, files: Sequence[tuple[str, os.stat_result]]) -> list[FileReport | None]:
        """Look up several files in one query per device (a rescan does little else)."""
        rows: dict[tuple[int, int], tuple[Any, ...]] = {}
        by_dev: dict[int, list[int]] = {}
        for _, st in files:
            by_dev.setdefault(st.st_dev, []).append(st.st_ino)
        for dev, inodes in by_dev.items():
            for start in range(0, len(inodes), _BATCH):
                chunk = inodes[start : start + _BATCH]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                    "SELECT ino, size, mtime_ns, ctime_ns, sigver, sha256, report FROM files "
                    f"WHERE dev = ? AND ino IN ({marks})",
                    (dev, *chunk),
                ):
                    rows[(dev, row[0])] = row[1:]
        return [self._report(path, st, rows.get((st.st_dev, st.st_ino))) for path, st in files]

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
        if report.verdict in (Verdict.INCOMPLETE, Verdict.ERROR):
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
        if not self._pending:
            return
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._pending
                )
        except sqlite3.Error:
            pass  # a cache that cannot be written only costs a rescan next time
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._db.close()


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
