"""The quarantine vault: encrypted, authenticated items; safe quarantine, restore, delete, purge.

Layout under the vault folder (``AegisPaths.quarantine_dir``, mode 0700)::

    vault.json       install id, where the key lives, key fingerprint (not secret)
    items/<id>.aqv   one encrypted item per file (mode 0600, never executable)
    journal/         operations in flight (see journal.py)
    .lock            serializes processes (flock) using the same vault

Content is never written in plaintext inside the vault; the only plaintext a restore writes
is the restored file itself, beside its destination. POSIX only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from keyring.backend import KeyringBackend

from ..atomic import fsync_dir
from ..errors import (
    ConfigError,
    ItemNotFound,
    QuarantineError,
    UnsafePathError,
    VaultIntegrityError,
)
from ..own_files import restore_temp_name
from ..paths import AegisPaths
from . import item_file, safe_fs
from .journal import Journal, JournalRecord, item_path, part_path, recover
from .keys import KeyStatus, KeyStore
from .metadata import UnreadableItem, VaultItem, VaultListing, owner_name
from .safe_fs import FileIdentity, printable

Warn = Callable[[str], None]
StepHook = Callable[[str], None]

DEFAULT_PURGE_DAYS = 30
KEY_FILE_NAME = "quarantine.key"

QUARANTINE_STEPS: tuple[str, ...] = (
    "quarantine:journal-written",
    "quarantine:chunk-written",
    "quarantine:item-written",
    "quarantine:item-committed",
    "quarantine:item-verified",
    "quarantine:original-removed",
    "quarantine:journal-removed",
)
"""Points a quarantine passes, in order (``chunk-written`` once per chunk)."""

RESTORE_STEPS: tuple[str, ...] = (
    "restore:journal-written",
    "restore:temp-created",
    "restore:chunk-written",
    "restore:temp-written",
    "restore:target-journaled",
    "restore:linked",
    "restore:temp-removed",
    "restore:item-removed",
    "restore:journal-removed",
)
"""Points a restore passes, in order (``chunk-written`` once per chunk)."""


@dataclass(frozen=True)
class QuarantineSettings:
    """The ``[quarantine]`` table of the settings."""

    purge_days: int = DEFAULT_PURGE_DAYS
    """Items older than this are deleted automatically; 0 keeps them forever."""
    use_keyring: bool = True
    """Keep the vault key in the OS keyring (false: in a key file, with a warning)."""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> QuarantineSettings:
        table = settings.get("quarantine", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[quarantine] in settings must be a table")
        unknown = set(table) - {"purge_days", "use_keyring"}
        if unknown:
            raise ConfigError(f"unknown [quarantine] setting(s): {', '.join(sorted(unknown))}")
        days = table.get("purge_days", DEFAULT_PURGE_DAYS)
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise ConfigError("[quarantine] purge_days must be a whole number >= 0")
        use_keyring = table.get("use_keyring", True)
        if not isinstance(use_keyring, bool):
            raise ConfigError("[quarantine] use_keyring must be true or false")
        return cls(purge_days=days, use_keyring=use_keyring)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Report file-system failures as QuarantineError (the CLI shows them as one line)."""
    try:
        yield
    except OSError as exc:
        raise QuarantineError(f"{what}: {exc}") from exc


class _ProcessLock:
    """Re-entrant lock held across threads of this process and, via flock, other processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    os.close(self._fd)  # closing releases the flock
                    self._fd = None


class Vault:
    """The quarantine. Construction does no I/O; the first operation creates the folders,
    loads (or creates) the key and recovers whatever a crash interrupted.

    ``warn`` receives messages people must see (key kept in a file, recovered operations,
    damaged items). ``step_hook`` is called with each name of :data:`QUARANTINE_STEPS` and
    :data:`RESTORE_STEPS` as the operation passes it (tests use it to crash on purpose).
    """

    def __init__(
        self,
        root: Path,
        keys: KeyStore,
        *,
        warn: Warn,
        step_hook: StepHook | None = None,
        chunk_size: int = item_file.DEFAULT_CHUNK_SIZE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.root = root
        self.items_dir = root / "items"
        self._journal = Journal(root / "journal")
        self._keys = keys
        self._warn = warn
        self._step = step_hook or (lambda _step: None)
        self._chunk_size = chunk_size
        self._clock = clock
        self._lock = _ProcessLock(root / ".lock")
        self._ready = False
        self._recovery_notes: list[str] = []
        self._warned_items: set[str] = set()

    @classmethod
    def for_paths(
        cls,
        paths: AegisPaths,
        *,
        warn: Warn,
        keyring_backend: KeyringBackend | None = None,
        use_keyring: bool = True,
        step_hook: StepHook | None = None,
    ) -> Vault:
        """The vault of a profile: ``paths.quarantine_dir``, key in the keyring or
        ``paths.data_dir / quarantine.key``."""
        keys = KeyStore(
            paths.quarantine_dir,
            paths.data_dir / KEY_FILE_NAME,
            warn=warn,
            backend=keyring_backend,
            use_keyring=use_keyring,
        )
        return cls(paths.quarantine_dir, keys, warn=warn, step_hook=step_hook)

    # -- housekeeping --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self) -> Iterator[bytes]:
        """Hold the lock; on first use prepare the folders and recover. Yields the key."""
        safe_fs.ensure_private_dir(self.root)
        with self._lock.held():
            key = self._keys.key()
            if not self._ready:
                safe_fs.ensure_private_dir(self.items_dir)
                safe_fs.ensure_private_dir(self._journal.folder)
                self._recovery_notes = recover(self._journal, self.items_dir, key, self._warn)
                self._ready = True
            yield key

    def exists(self) -> bool:
        """Whether anything was ever quarantined here (reading never creates the vault)."""
        return self.items_dir.is_dir() or (self.root / "vault.json").exists()

    def _must_exist(self, item_id: str) -> None:
        if not self.exists():
            raise ItemNotFound(f"no quarantined item {item_id!r} (the quarantine is empty)")

    def recover(self) -> list[str]:
        """Finish or roll back interrupted operations (done once per Vault automatically).
        Returns what was recovered, one line per operation."""
        if not self.exists():
            return []
        with self._session():
            return list(self._recovery_notes)

    @property
    def key_location(self) -> str:
        return self._keys.location

    def key_status(self) -> KeyStatus:
        """Where the key lives and, when in a file, why (reads ``vault.json`` only)."""
        return self._keys.status()

    # -- reading -------------------------------------------------------------------------------

    def _load(self, path: Path, key: bytes) -> VaultItem:
        with open(path, "rb") as fh:
            _, meta = item_file.read_metadata(fh, key)
        item = VaultItem.from_metadata(meta)
        if f"{item.id}.aqv" != path.name:
            raise VaultIntegrityError(f"vault item {path.name} carries another item's metadata")
        return item

    def _item_files(self) -> list[Path]:
        if not self.items_dir.is_dir():
            return []
        return sorted(p for p in self.items_dir.iterdir() if p.name.endswith(".aqv"))

    def _list(self, key: bytes) -> list[VaultItem]:
        return self._listing(key).items

    def _listing(self, key: bytes) -> VaultListing:
        items = []
        unreadable = []
        for path in self._item_files():
            try:
                items.append(self._load(path, key))
            except Exception as exc:  # one damaged item never hides the others
                reason = str(exc) or type(exc).__name__
                unreadable.append(UnreadableItem(path.name.removesuffix(".aqv"), reason))
                if path.name not in self._warned_items:
                    self._warned_items.add(path.name)
                    self._warn(f"vault item {path.name} cannot be read: {reason}")
        items.sort(key=lambda it: (it.quarantined_at, it.id))
        return VaultListing(items, unreadable)

    def items(self) -> list[VaultItem]:
        """Every readable item, oldest first; damaged items are reported through ``warn``."""
        return self.listing().items

    def listing(self) -> VaultListing:
        """Every readable item, oldest first, and the id and reason of each unreadable one."""
        if not self.exists():
            return VaultListing([], [])
        with self._session() as key:
            return self._listing(key)

    def _resolve(self, item_id: str) -> Path:
        wanted = item_id.strip().lower()
        if not wanted or not all(c in "0123456789abcdef" for c in wanted):
            raise ItemNotFound(f"no quarantined item {item_id!r}")
        exact = item_path(self.items_dir, wanted)
        if exact.exists():
            return exact
        matches = [p for p in self._item_files() if p.name.startswith(wanted)]
        if len(wanted) >= 4 and len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ItemNotFound(f"item id {item_id!r} is ambiguous; give more characters")
        raise ItemNotFound(f"no quarantined item {item_id!r}")

    def get(self, item_id: str) -> VaultItem:
        """The item with this id (or a unique prefix of at least 4 characters)."""
        self._must_exist(item_id)
        with self._session() as key:
            return self._load(self._resolve(item_id), key)

    def read_content(self, item_id: str) -> bytes:
        """The decrypted content (for small items and tests; restore streams instead)."""
        self._must_exist(item_id)
        with self._session() as key:
            path = self._resolve(item_id)
            with open(path, "rb") as fh:
                return b"".join(item_file.iter_content(fh, key))

    # -- quarantine ----------------------------------------------------------------------------

    def quarantine(
        self,
        path: str | os.PathLike[str],
        *,
        identity: FileIdentity | None = None,
        sha256: str | None = None,
        verdict: str = "malicious",
        detections: Sequence[Mapping[str, Any]] = (),
        explanation: Sequence[str] = (),
    ) -> VaultItem:
        """Move the file at ``path`` into the vault.

        ``identity`` and ``sha256`` are what the scan saw; if the file is no longer that file,
        or ``path`` or one of its folders is a symlink, nothing is done (UnsafePathError /
        QuarantineError). The original is removed only once the vault copy is verified.
        """
        full = os.path.abspath(os.fspath(path))
        shown = printable(full)
        with (
            _os_errors(f"cannot quarantine {shown}"),
            self._session() as key,
            safe_fs.open_parent(full) as (dir_fd, name),
        ):
            src_fd = safe_fs.open_regular(dir_fd, name, shown)
            with os.fdopen(src_fd, "rb") as src:
                st = os.fstat(src_fd)
                if identity is not None and FileIdentity.of(st) != identity:
                    raise UnsafePathError(f"{shown} is not the file that was scanned; left alone")
                item_id = secrets.token_hex(8)
                record = JournalRecord("quarantine", item_id, full, st.st_dev, st.st_ino)
                self._journal.write(record)
                template = VaultItem(
                    id=item_id,
                    original_path=full,
                    size=st.st_size,
                    sha256="",
                    mode=st.st_mode,
                    uid=st.st_uid,
                    gid=st.st_gid,
                    owner=owner_name(st.st_uid),
                    atime_ns=st.st_atime_ns,
                    mtime_ns=st.st_mtime_ns,
                    ctime_ns=st.st_ctime_ns,
                    quarantined_at=self._clock(),
                    verdict=verdict,
                    detections=tuple(dict(d) for d in detections),
                    explanation=tuple(explanation),
                )
                item = self._copy_in(src, st, template, sha256, key, dir_fd, name)
            self._journal.remove(record)
            self._step("quarantine:journal-removed")
        if st.st_nlink > 1:
            self._warn(
                f"{shown} had {st.st_nlink - 1} other hard link(s); those names still hold "
                "the content"
            )
        return item

    def _copy_in(
        self,
        src: BinaryIO,
        st: os.stat_result,
        template: VaultItem,
        sha256: str | None,
        key: bytes,
        dir_fd: int,
        name: str,
    ) -> VaultItem:
        """Write, commit and verify the vault copy; then unlink the original."""
        shown = template.display_path
        part = part_path(self.items_dir, template.id)
        final = item_path(self.items_dir, template.id)
        made: list[VaultItem] = []

        def metadata(content: item_file.WrittenContent) -> dict[str, Any]:
            made.append(replace(template, size=content.size, sha256=content.sha256))
            return made[-1].to_metadata()

        removed = False
        try:
            self._step("quarantine:journal-written")
            with safe_fs.open_dir(self.items_dir) as items_fd:
                out_fd = safe_fs.create_exclusive(items_fd, part.name)
            with os.fdopen(out_fd, "wb") as out:
                content = item_file.write_item(
                    out,
                    src,
                    master_key=key,
                    item_id=template.id,
                    make_metadata=metadata,
                    chunk_size=self._chunk_size,
                    on_chunk=lambda: self._step("quarantine:chunk-written"),
                )
                out.flush()
                os.fsync(out.fileno())
            self._step("quarantine:item-written")
            if sha256 is not None and content.sha256 != sha256.lower():
                raise QuarantineError(f"{shown} changed since it was scanned; left in place")
            os.rename(part, final)
            fsync_dir(self.items_dir)
            self._step("quarantine:item-committed")
            with open(final, "rb") as fh:
                _, check = item_file.verify_item(fh, key)
            if check != content:
                raise VaultIntegrityError("the vault copy does not match the file")
            self._step("quarantine:item-verified")
            now = safe_fs.lstat_in(dir_fd, name)
            after = os.fstat(src.fileno())
            if (
                now is None
                or FileIdentity.of(now) != FileIdentity.of(st)
                or after.st_size != content.size
                or after.st_mtime_ns != st.st_mtime_ns
            ):
                raise QuarantineError(f"{shown} changed while it was copied; left in place")
            os.unlink(name, dir_fd=dir_fd)
            removed = True
            safe_fs.fsync_fd(dir_fd)
            self._step("quarantine:original-removed")
        except BaseException:
            if not removed:
                part.unlink(missing_ok=True)
                final.unlink(missing_ok=True)
                self._journal.remove(
                    JournalRecord("quarantine", template.id, template.original_path)
                )
            raise
        return made[-1]

    # -- restore -------------------------------------------------------------------------------

    def restore(self, item_id: str, *, to_dir: str | os.PathLike[str] | None = None) -> str:
        """Put an item back, byte-identical with its mode and times, and remove it from the
        vault. Into its original folder, or ``to_dir``; under its name, or - when that is
        taken - ``name (restored).ext``: nothing is ever overwritten. Returns the new path
        (a str that may hold surrogate escapes)."""
        self._must_exist(item_id)
        with _os_errors(f"cannot restore {item_id}"), self._session() as key:
            source = self._resolve(item_id)
            item = self._load(source, key)
            folder = os.path.abspath(
                os.fspath(to_dir) if to_dir is not None else os.path.dirname(item.original_path)
            )
            try:
                with safe_fs.open_dir(folder) as dir_fd:
                    final_name = self._restore_into(item, source, key, folder, dir_fd)
            except QuarantineError as exc:
                if to_dir is None and "does not exist" in str(exc):
                    raise QuarantineError(f"{exc}; restore elsewhere with --to DIR") from exc
                raise
            return os.path.join(folder, final_name)

    def _restore_into(
        self, item: VaultItem, source: Path, key: bytes, folder: str, dir_fd: int
    ) -> str:
        temp = restore_temp_name(item.id)
        record = JournalRecord("restore", item.id, folder, temp_name=temp)
        self._journal.write(record)
        linked = False
        try:
            self._step("restore:journal-written")
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(temp, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    os.unlink(temp, dir_fd=dir_fd)  # our own leftover name
            tfd = safe_fs.create_exclusive(dir_fd, temp)
            with os.fdopen(tfd, "wb") as out:
                self._step("restore:temp-created")
                digest = hashlib.sha256()
                size = 0
                with open(source, "rb") as fh:
                    for chunk in item_file.iter_content(
                        fh, key, on_chunk=lambda: self._step("restore:chunk-written")
                    ):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                out.flush()
                if size != item.size or digest.hexdigest() != item.sha256:
                    raise VaultIntegrityError(f"item {item.id} does not match its metadata")
                self._apply_attributes(out.fileno(), item)
                os.fsync(out.fileno())
                st = os.fstat(out.fileno())
            self._step("restore:temp-written")
            for candidate in safe_fs.restore_names(item.name):
                if safe_fs.lstat_in(dir_fd, candidate) is not None:
                    continue
                record = record.with_(dev=st.st_dev, ino=st.st_ino, final_name=candidate)
                self._journal.write(record)
                self._step("restore:target-journaled")
                try:
                    kept_temp = safe_fs.link_noreplace(dir_fd, temp, candidate)
                except FileExistsError:
                    continue
                linked = True
                safe_fs.fsync_fd(dir_fd)
                self._step("restore:linked")
                if kept_temp:
                    os.unlink(temp, dir_fd=dir_fd)
                    safe_fs.fsync_fd(dir_fd)
                self._step("restore:temp-removed")
                break
        except BaseException:
            if not linked:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                self._journal.remove(record)
            raise
        source.unlink()
        fsync_dir(self.items_dir)
        self._step("restore:item-removed")
        self._journal.remove(record)
        self._step("restore:journal-removed")
        assert record.final_name is not None
        return record.final_name

    @staticmethod
    def _apply_attributes(fd: int, item: VaultItem) -> None:
        if os.geteuid() == 0 and (item.uid, item.gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(OSError):
                os.fchown(fd, item.uid, item.gid)
        os.fchmod(fd, stat.S_IMODE(item.mode))
        os.utime(fd, ns=(item.atime_ns, item.mtime_ns))

    # -- delete and purge ----------------------------------------------------------------------

    def delete(self, item_id: str) -> VaultItem | None:
        """Remove an item for good. Returns what it was, or None for a damaged item (which is
        removed too)."""
        self._must_exist(item_id)
        with _os_errors(f"cannot delete {item_id}"), self._session() as key:
            path = self._resolve(item_id)
            item: VaultItem | None
            try:
                item = self._load(path, key)
            except VaultIntegrityError:
                item = None
            path.unlink()
            fsync_dir(self.items_dir)
        return item

    def purge(self, days: float = DEFAULT_PURGE_DAYS) -> list[VaultItem]:
        """Delete items quarantined ``days`` or more days ago; return them."""
        if days < 0:
            raise ConfigError("purge days must not be negative")
        if not self.exists():
            return []
        with _os_errors("cannot purge the vault"), self._session() as key:
            cutoff = self._clock() - timedelta(days=days)
            purged = []
            for item in self._list(key):
                if item.quarantined_at <= cutoff:
                    item_path(self.items_dir, item.id).unlink(missing_ok=True)
                    purged.append(item)
            if purged:
                fsync_dir(self.items_dir)
            return purged
