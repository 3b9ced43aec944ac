"""Where an installed build of the program lives, and how a new one is staged beside it.

``packaging/linux/install.sh`` installs this layout (``~/.local/lib/aegis`` by default)::

    LIB/aegis, LIB/aegis-tray        the launcher (packaging/linux/aegis-launcher.sh)
    LIB/versions/<version>/          one complete bundle per version
    LIB/current -> versions/<v>      the build the launcher starts
    LIB/previous -> versions/<v>     the build it goes back to when a new one fails to start
    LIB/staged -> versions/<v>       a verified update, switched in at the next start
    LIB/start-pending                "<version> <pid>": a new build's first start, not yet
                                     confirmed by that build (:func:`confirm_started`)
    LIB/failed/<version>             builds that did not start: never staged again

The update client only ever writes ``versions/<new>`` and the ``staged`` link; the launcher
(a shell script, so that it works whatever is wrong with a bundle) does the switch and the
fall-back. Nothing here is used when Aegis runs from a source tree.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UpdateFailed
from .app_bundle import unpack_bundle
from .app_index import check_version

__all__ = ["AppLayout", "confirm_started"]

MARKER = "start-pending"
EXECUTABLES = ("aegis", "aegis.exe", "aegis-tray.exe")


def _link_name(path: Path) -> str | None:
    try:
        return Path(os.readlink(path)).name
    except OSError:
        return None


def _relink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically (a new symlink renamed over the old one)."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)


class AppLayout:
    """An installation folder (``LIB``) in the versioned layout."""

    def __init__(self, lib: Path) -> None:
        self.lib = lib
        self.versions = lib / "versions"

    @classmethod
    def of_bundle(cls, bundle_dir: Path) -> AppLayout | None:
        """The layout ``bundle_dir`` (``LIB/versions/<v>``) belongs to, if it is one."""
        bundle_dir = bundle_dir.resolve()
        if bundle_dir.parent.name != "versions":
            return None
        return cls(bundle_dir.parent.parent)

    @classmethod
    def of_running(cls) -> AppLayout | None:
        """The layout of the running program when it is a frozen bundle in this layout."""
        if not getattr(sys, "frozen", False):
            return None
        return cls.of_bundle(Path(sys.executable).resolve().parent)

    def is_installed(self) -> bool:
        return (self.lib / "current").is_symlink() and self.versions.is_dir()

    @property
    def installed_version(self) -> str | None:
        return _link_name(self.lib / "current")

    @property
    def previous_version(self) -> str | None:
        return _link_name(self.lib / "previous")

    @property
    def staged_version(self) -> str | None:
        return _link_name(self.lib / "staged")

    def failed_versions(self) -> list[str]:
        folder = self.lib / "failed"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def version_dir(self, version: str) -> Path:
        return self.versions / check_version(version)

    def writable(self) -> bool:
        return os.access(self.lib, os.W_OK) and os.access(self.versions, os.W_OK)

    # -- staging -------------------------------------------------------------------------------

    def stage(self, version: str, tar: bytes | Path) -> Path:
        """Unpack a verified bundle tar (bytes or a file) as ``versions/<version>`` and mark
        it staged: the launcher switches to it at the next start. Raises
        :class:`UpdateFailed`."""
        return self.stage_built(version, lambda folder: unpack_bundle(tar, folder))

    def stage_built(self, version: str, build: Callable[[Path], None]) -> Path:
        """Like :meth:`stage`, the folder made by ``build(folder)`` (which creates it, beside
        the installed versions, and raises to give up: nothing is then kept)."""
        dest = self.version_dir(version)
        keep = {self.installed_version, self.previous_version}
        if version in keep:
            raise UpdateFailed(f"version {version} is already installed")
        tmp = Path(tempfile.mkdtemp(prefix=f".partial-{version}-", dir=self.versions))
        try:
            build(tmp / "b")
            if not any((tmp / "b" / name).is_file() for name in EXECUTABLES):
                raise UpdateFailed(f"the bundle of version {version} holds no aegis executable")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp / "b", dest)
        except OSError as exc:
            raise UpdateFailed(
                f"cannot unpack version {version} in {self.versions}: {exc}"
            ) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _relink(self.lib / "staged", f"versions/{version}")
        self._clean(keep | {version})
        return dest

    def _clean(self, keep: set[str | None]) -> None:
        """Remove every version but the ones in ``keep`` (and half-written ones)."""
        for p in self.versions.iterdir():
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)

    def status(self) -> dict[str, Any]:
        pending = None
        marker = self.lib / MARKER
        if marker.is_file():
            pending = marker.read_text(errors="replace").split(" ")[0].strip() or None
        return {
            "installed_at": str(self.lib),
            "app_version": self.installed_version,
            "previous_version": self.previous_version,
            "staged_version": self.staged_version,
            "start_pending": pending,
            "failed_versions": self.failed_versions(),
        }


def confirm_started(bundle_dir: Path) -> bool:
    """Called by a build once it has started: clears the start marker the launcher wrote for
    it, so that the launcher keeps it. True when a marker was cleared."""
    layout = AppLayout.of_bundle(bundle_dir)
    if layout is None:
        return False
    marker = layout.lib / MARKER
    try:
        version = marker.read_text(errors="replace").split(" ")[0].strip()
    except OSError:
        return False
    if version != bundle_dir.resolve().name:
        return False
    try:
        marker.unlink()
    except OSError:
        return False
    return True
