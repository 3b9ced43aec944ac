"""The installed content versions on this machine, and the switch between them.

Layout under ``AegisPaths.content_dir``::

    current.json            {"version", "dir", "previous": {...} | null, "activated"}
    versions/<v>-<digest>/  index.json + files/<relpath> (sealed: see seal.py)
    staging/                a version being written (removed at the next start)
    partial/<sha256>        blobs being downloaded (resumed with a Range request)
    state.json              the last check: when, its result and why

A version folder is complete before it is renamed into ``versions/``; ``current.json`` is
then replaced atomically. A process killed at any point leaves ``current.json`` naming one
complete version (the old or the new). The previous version is kept for ``--rollback``.

Content on disk is only ever sealed. Detectors read plain files, so the active version is
unsealed, each file checked against its signed SHA-256, into a *view* folder in memory
(``/dev/shm``) where the system has one; with ``AEGIS_HOME`` set (tests, portable profiles)
the view lives in that profile's cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..atomic import atomic_write, fsync_dir
from ..content import bundled_resources
from ..errors import ContentError
from ..paths import HOME_ENV, AegisPaths
from .index import ContentIndex, content_files, sha256_hex
from .seal import seal, unseal

__all__ = ["ContentStore", "Installed"]

CURRENT = "current.json"
STATE = "state.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Installed:
    version: int
    dir: str
    activated: str | None = None


class ContentStore:
    """Versions of downloaded content under ``paths.content_dir``."""

    def __init__(self, paths: AegisPaths) -> None:
        self.paths = paths
        self.root = paths.content_dir

    # -- reading -------------------------------------------------------------------------------

    def _pointer(self) -> dict[str, Any] | None:
        try:
            doc = json.loads((self.root / CURRENT).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ContentError(
                f"the content pointer {self.root / CURRENT} is damaged: {exc}"
            ) from exc
        return doc if isinstance(doc, dict) else None

    def current(self) -> Installed | None:
        doc = self._pointer()
        if not doc:
            return None
        return Installed(int(doc["version"]), str(doc["dir"]), doc.get("activated"))

    def previous(self) -> Installed | None:
        doc = self._pointer()
        prev = doc.get("previous") if doc else None
        if not isinstance(prev, dict):
            return None
        return Installed(int(prev["version"]), str(prev["dir"]), prev.get("activated"))

    def stamp(self) -> tuple[int, int] | None:
        """Cheap change marker for engines that reload when content changes."""
        try:
            st = os.stat(self.root / CURRENT)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def index_of(self, inst: Installed) -> ContentIndex:
        path = self.root / "versions" / inst.dir / "index.json"
        return ContentIndex.from_json(path.read_bytes())

    def index_sha256(self, inst: Installed) -> str | None:
        """SHA-256 of the installed version's index (equal to the signed target's when the
        repository still offers that version)."""
        try:
            return sha256_hex((self.root / "versions" / inst.dir / "index.json").read_bytes())
        except OSError:
            return None

    def read_file(self, inst: Installed, rel: str, sha256: str) -> bytes:
        """One plain file of an installed version, checked against its signed hash."""
        path = self.root / "versions" / inst.dir / "files" / rel
        try:
            data = unseal(path.read_bytes())
        except OSError as exc:
            raise ContentError(f"cannot read installed content {path}: {exc}") from exc
        if sha256_hex(data) != sha256:
            raise ContentError(f"installed content {rel} of version {inst.version} is damaged")
        return data

    def known_files(self) -> dict[str, Callable[[], bytes]]:
        """Plain files this machine already has, by SHA-256: bundled, then the current version
        (what a new version can reuse or patch)."""
        have: dict[str, Callable[[], bytes]] = {}
        for _rel, path in content_files(bundled_resources()):
            with contextlib.suppress(OSError):
                have.setdefault(_file_sha(path), path.read_bytes)
        inst = self.current()
        if inst is not None:
            with contextlib.suppress(ContentError, OSError):
                for rel, entry in self.index_of(inst).files.items():
                    have.setdefault(
                        entry.sha256,
                        lambda rel=rel, sha=entry.sha256: self.read_file(inst, rel, sha),  # type: ignore[misc]
                    )
        return have

    # -- writing -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Remove what an interrupted install left (staging) and versions no longer named."""
        shutil.rmtree(self.root / "staging", ignore_errors=True)
        keep = {i.dir for i in (self.current(), self.previous()) if i is not None}
        versions = self.root / "versions"
        if versions.is_dir():
            for d in versions.iterdir():
                if d.name not in keep:
                    shutil.rmtree(d, ignore_errors=True)

    def install(self, index: ContentIndex, files: Mapping[str, bytes]) -> Installed:
        """Write a complete version, then switch to it atomically; keep the old as previous."""
        if set(files) != set(index.files):
            raise ContentError("the files to install do not match the index")
        name = f"{index.version}-{index.digest[:16]}"
        staging = self.paths.ensure(self.root / "staging")
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=staging))
        try:
            for rel, data in files.items():
                if sha256_hex(data) != index.files[rel].sha256:
                    raise ContentError(f"{rel} does not match its signed hash")
                dest = tmp / "files" / rel
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                _write_synced(dest, seal(data))
            _write_synced(tmp / "index.json", index.to_json())
            versions = self.paths.ensure(self.root / "versions")
            final = versions / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(versions)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = self.current()
        self._switch(Installed(index.version, name, _now()), old)
        return Installed(index.version, name)

    def _switch(self, new: Installed, previous: Installed | None) -> None:
        doc: dict[str, Any] = {"version": new.version, "dir": new.dir, "activated": new.activated}
        if previous is not None and previous.dir != new.dir:
            doc["previous"] = {
                "version": previous.version,
                "dir": previous.dir,
                "activated": previous.activated,
            }
        atomic_write(self.root / CURRENT, (json.dumps(doc, indent=2) + "\n").encode())

    def rollback(self) -> tuple[Installed | None, Installed | None]:
        """Switch back to the previous version (or to the bundled content when there is none).
        Returns (from, to)."""
        cur = self.current()
        prev = self.previous()
        if cur is None:
            return None, None
        if prev is not None and (self.root / "versions" / prev.dir).is_dir():
            self._switch(Installed(prev.version, prev.dir, _now()), cur)
            return cur, prev
        (self.root / CURRENT).unlink()
        fsync_dir(self.root)
        return cur, None

    # -- the last check ------------------------------------------------------------------------

    def record_check(self, result: str, reason: str, version: int) -> None:
        doc = {"last_check": _now(), "result": result, "reason": reason, "version": version}
        with contextlib.suppress(OSError):
            atomic_write(self.root / STATE, (json.dumps(doc) + "\n").encode())

    def last_check(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.root / STATE).read_bytes())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    # -- the plain view for detectors ----------------------------------------------------------

    def view_base(self) -> Path:
        shm = Path("/dev/shm")
        if not os.environ.get(HOME_ENV) and shm.is_dir() and os.access(shm, os.W_OK):
            tag = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
            return shm / f"aegis-{os.getuid()}-{tag}"
        return self.paths.cache_dir / "content-view"

    def view(self) -> Path | None:
        """A folder with the current version's plain files (made if needed), or None."""
        inst = self.current()
        if inst is None:
            return None
        base = self.view_base()
        folder = base / inst.dir
        if (folder / ".complete").is_file():
            return folder
        index = self.index_of(inst)
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(base, 0o700)
        tmp = Path(tempfile.mkdtemp(prefix=".view.", dir=base))
        try:
            for rel, entry in index.files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                dest.write_bytes(self.read_file(inst, rel, entry.sha256))
            (tmp / ".complete").write_text(str(inst.version))
            try:
                os.replace(tmp, folder)
            except OSError:  # another process made it first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        prev = self.previous()
        keep = {inst.dir, prev.dir if prev else ""}  # a running engine may still read prev
        for old in base.iterdir():  # views of versions no longer current
            if old.name not in keep and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)
        return folder


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
