"""Crash safety: a journal of quarantine and restore operations, and recovery from it.

The invariant: at every instant a file is either at its original place, or complete and
verified in the vault (or both, briefly). Both operations are ordered so that it holds:

quarantine
    journal written -> item written to ``<id>.aqv.part`` and fsynced -> renamed to
    ``<id>.aqv`` -> decrypted and checked against what was read -> only then the original
    unlinked -> journal removed.
restore
    journal written -> content decrypted into a private temp file beside the destination,
    checked, mode and times set, fsynced -> the temp file's identity journaled -> linked (or
    renamed) to a free name, never replacing anything -> temp name removed -> vault item
    removed -> journal removed.

:func:`recover` runs at the next start (the vault calls it before its first operation) and
finishes or rolls back whatever a crash interrupted; it never removes the last copy of a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..atomic import atomic_write, fsync_dir
from ..bounded_io import loads_bounded, read_regular_file
from ..errors import QuarantineError, VaultIntegrityError
from . import item_file, safe_fs
from .metadata import decode_path, encode_path
from .safe_fs import printable

Warn = Callable[[str], None]


_MAX_RECORD = 256 * 1024  # one record is a few hundred bytes


@dataclass(frozen=True)
class JournalRecord:
    """One operation in flight. ``path`` is the original file (quarantine) or the destination
    folder (restore); ``dev``/``ino`` the original's identity (quarantine) or the temp file's
    (restore, once created)."""

    op: str
    item_id: str
    path: str
    dev: int | None = None
    ino: int | None = None
    temp_name: str | None = None
    final_name: str | None = None

    @property
    def file_name(self) -> str:
        return f"{self.op}-{self.item_id}.json"

    def with_(self, **changes: Any) -> JournalRecord:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["path"] = encode_path(self.path)
        for key in ("temp_name", "final_name"):
            if data[key] is not None:
                data[key] = encode_path(data[key])
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> JournalRecord:
        data = loads_bounded(raw, max_bytes=_MAX_RECORD)
        if not isinstance(data, dict) or data.get("op") not in ("quarantine", "restore"):
            raise ValueError("not a journal record")
        for key in ("temp_name", "final_name"):
            if data.get(key) is not None:
                data[key] = decode_path(data[key])
        data["path"] = decode_path(data["path"])
        return cls(**data)


class Journal:
    """Journal records, one small file each, written atomically and durably."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, record: JournalRecord) -> None:
        atomic_write(self.folder / record.file_name, record.to_json())

    def remove(self, record: JournalRecord) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / record.file_name)
        fsync_dir(self.folder)

    def pending(self, warn: Warn) -> list[JournalRecord]:
        if not self.folder.is_dir():
            return []
        records: list[JournalRecord] = []
        for entry in sorted(os.listdir(self.folder)):
            path = self.folder / entry
            if entry.startswith(".") and entry.endswith(".tmp"):
                path.unlink(missing_ok=True)  # an atomic write that never completed
                continue
            if not entry.endswith(".json"):
                continue  # e.g. a damaged entry moved aside earlier
            try:
                records.append(JournalRecord.from_json(read_regular_file(path, _MAX_RECORD)))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                aside = path.with_name(path.name + ".damaged")
                os.replace(path, aside)
                warn(f"quarantine journal entry {entry} is damaged ({exc}); moved to {aside}")
        return records


_RESTORE_TEMP = re.compile(r"^\.aegis-restore-([0-9a-f]{8,64})\.tmp$")


def restore_in_flight(journal_dir: Path, path: str) -> bool:
    """True when ``path`` is the temp file of a restore in progress (a journal record names
    it): real-time protection must not report the engine's own temp file. A file that merely
    has such a name, without the record, is scanned like any other."""
    m = _RESTORE_TEMP.match(os.path.basename(path))
    if m is None:
        return False
    try:
        raw = (journal_dir / f"restore-{m.group(1)}.json").read_bytes()
        record = JournalRecord.from_json(raw)
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return record.temp_name == os.path.basename(path) and os.path.realpath(
        record.path
    ) == os.path.realpath(os.path.dirname(path))


def item_path(items_dir: Path, item_id: str) -> Path:
    return items_dir / f"{item_id}.aqv"


def part_path(items_dir: Path, item_id: str) -> Path:
    return items_dir / f"{item_id}.aqv.part"


def _verified(path: Path, key: bytes) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            meta, _ = item_file.verify_item(fh, key)
    except FileNotFoundError:
        return None
    except VaultIntegrityError:
        return None
    if meta.get("id") != path.name.split(".", 1)[0]:
        return None
    return meta


def _sha256_of(dir_fd: int, name: str, shown: str) -> str:
    fd = safe_fs.open_regular(dir_fd, name, shown)
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_if_regular(dir_fd: int, name: str, identity: tuple[int | None, int | None]) -> None:
    st = safe_fs.lstat_in(dir_fd, name)
    if st is None or not stat.S_ISREG(st.st_mode):
        return
    if identity[0] is not None and (st.st_dev, st.st_ino) != identity:
        return
    os.unlink(name, dir_fd=dir_fd)
    safe_fs.fsync_fd(dir_fd)


def recover(journal: Journal, items_dir: Path, key: bytes, warn: Warn) -> list[str]:
    """Finish or roll back every interrupted operation; return one note per operation."""
    notes = []
    for record in journal.pending(warn):
        if record.op == "quarantine":
            note = _recover_quarantine(record, items_dir, key, warn)
        else:
            note = _recover_restore(record, items_dir, key)
        journal.remove(record)
        notes.append(note)
        warn(note)
    return notes


def _recover_quarantine(record: JournalRecord, items_dir: Path, key: bytes, warn: Warn) -> str:
    shown = printable(record.path)
    final = item_path(items_dir, record.item_id)
    part = part_path(items_dir, record.item_id)
    meta = _verified(final, key)
    try:
        with safe_fs.open_parent(record.path) as (dir_fd, name):
            st = safe_fs.lstat_in(dir_fd, name)
            original_there = (
                st is not None
                and stat.S_ISREG(st.st_mode)
                and (st.st_dev, st.st_ino) == (record.dev, record.ino)
            )
            if meta is None:
                part.unlink(missing_ok=True)
                if final.exists():
                    if not original_there:
                        aside = final.with_name(final.name + ".damaged")
                        os.replace(final, aside)
                        return (
                            f"interrupted quarantine of {shown}: the vault copy is damaged and "
                            f"the original is gone; kept the damaged copy as {aside}"
                        )
                    final.unlink()
                fsync_dir(items_dir)
                if not original_there:
                    return (
                        f"interrupted quarantine of {shown} rolled back; the file is no longer "
                        "at its place (something else moved or removed it)"
                    )
                return f"interrupted quarantine of {shown} rolled back: the file is in place"
            part.unlink(missing_ok=True)
            if not original_there:
                return f"interrupted quarantine of {shown} completed: the file is in the vault"
            if _sha256_of(dir_fd, name, shown) == meta.get("sha256"):
                os.unlink(name, dir_fd=dir_fd)
                safe_fs.fsync_fd(dir_fd)
                return f"interrupted quarantine of {shown} completed: the file is in the vault"
            final.unlink()
            fsync_dir(items_dir)
            return (
                f"interrupted quarantine of {shown} rolled back: the file changed since, "
                "so it was left in place"
            )
    except QuarantineError as exc:
        part.unlink(missing_ok=True)
        if meta is None:
            return f"interrupted quarantine of {shown} rolled back ({exc})"
        return (
            f"interrupted quarantine of {shown}: the file is in the vault (item "
            f"{record.item_id}) and its original place could not be checked safely ({exc})"
        )


def _recover_restore(record: JournalRecord, items_dir: Path, key: bytes) -> str:
    shown = printable(record.path)
    final = item_path(items_dir, record.item_id)
    identity = (record.dev, record.ino)
    try:
        with safe_fs.open_dir(record.path) as dir_fd:
            done = not final.exists()
            if not done and record.final_name is not None and record.dev is not None:
                st = safe_fs.lstat_in(dir_fd, record.final_name)
                done = st is not None and (st.st_dev, st.st_ino) == identity
            if record.temp_name is not None:
                _remove_if_regular(dir_fd, record.temp_name, identity)
            if done:
                final.unlink(missing_ok=True)
                fsync_dir(items_dir)
                where = os.path.join(record.path, record.final_name or "")
                return f"interrupted restore completed: {printable(where)}"
            return (
                f"interrupted restore into {shown} rolled back: item {record.item_id} is "
                "still in the vault"
            )
    except QuarantineError as exc:
        if final.exists() and _verified(final, key) is not None:
            return (
                f"interrupted restore into {shown} rolled back: item {record.item_id} is "
                f"still in the vault ({exc})"
            )
        return f"interrupted restore into {shown}: could not check the destination ({exc})"
