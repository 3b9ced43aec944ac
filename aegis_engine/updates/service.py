"""Engine-level entry points of updates: check (server or folder), roll back, status.

The CLI (``aegis update``), the monitor's background check and the tray app's "Check for
updates" all call :func:`check_for_updates`; ``aegis status`` and the tray show
:func:`content_status`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from ..content import bundled_resources
from ..errors import AegisError, ContentError
from ..net import ConsentGate, NetClient, update_settings_from
from ..paths import AegisPaths
from ..settings import SettingsStore
from .client import Progress, UpdateClient, UpdateResult, rollback, shipped_root
from .fetcher import OFFLINE_BASE, DirFetcher, NetFetcher, RangeFetcher
from .index import content_files
from .store import ContentStore

__all__ = [
    "ContentStatus",
    "NoSource",
    "Source",
    "SourceOptions",
    "check_for_updates",
    "content_status",
    "rollback",
    "update_source",
]

STALE_DAYS = 7


@dataclass(frozen=True)
class Source:
    """Where one check reads the repository from, and the root it trusts."""

    fetcher: RangeFetcher
    base_url: str
    root: bytes


NONE = "unavailable"


class NoSource(AegisError):
    """The check cannot start (settings, root, server); ``result`` is what to report."""

    def __init__(self, reason: str, result: str = "failed") -> None:
        super().__init__(reason)
        self.result = result


class SourceOptions(TypedDict, total=False):
    """Where a check (content or program) looks: every key optional."""

    server: str | None
    """The repository's URL (default: ``[updates] server``)."""
    root_file: Path | None
    """The trusted root metadata (default: ``[updates] root``, else the shipped one)."""
    source_dir: Path | None
    """A copied repository to read instead of a server (``aegis update --from``)."""
    consent: ConsentGate | None
    """Asked before any socket opens (default: the profile's consent store)."""


@contextlib.contextmanager
def update_source(paths: AegisPaths, **options: Unpack[SourceOptions]) -> Iterator[Source]:
    """The repository of a check: the folder ``source_dir``, else ``server`` or the one in
    settings through the network layer (which asks ``consent``). Raises :class:`NoSource`."""
    server, root_file = options.get("server"), options.get("root_file")
    source_dir, consent = options.get("source_dir"), options.get("consent")
    try:
        settings = update_settings_from(SettingsStore(paths.settings_file).current.values)
    except AegisError as exc:
        raise NoSource(f"update settings: {exc}") from exc
    root_path = root_file or settings.root
    if root_path is not None:
        try:
            root = root_path.read_bytes()
        except OSError as exc:
            raise NoSource(f"cannot read the trusted root {root_path}: {exc}") from exc
    else:
        shipped = shipped_root()
        if shipped is None:
            raise NoSource("no trusted root: Aegis ships none and --root was not given", NONE)
        root = shipped
    if source_dir is not None:
        yield Source(DirFetcher(source_dir), OFFLINE_BASE, root)
        return
    url = server or settings.server
    if not url:
        raise NoSource("no update server is configured ([updates] server in settings)", NONE)
    if consent is None:
        from ..privacy import ConsentStore

        consent = ConsentStore.for_paths(paths)
    with NetClient(settings.net, consent) as net:
        yield Source(NetFetcher(net), url, root)


def _failed(paths: AegisPaths, reason: str) -> UpdateResult:
    store = ContentStore(paths)
    try:
        cur = store.current()
    except ContentError:
        cur = None
    version = cur.version if cur else 0
    store.record_check("failed", reason, version)
    return UpdateResult("failed", version, version, 0, reason)


def check_for_updates(
    paths: AegisPaths, *, progress: Progress | None = None, **source: Unpack[SourceOptions]
) -> UpdateResult:
    """One check (and install when there is something new). Never raises for an update
    problem: the result says ``refused`` or ``failed`` and why."""
    try:
        with update_source(paths, **source) as src:
            client = UpdateClient(
                paths, src.fetcher, base_url=src.base_url, root=src.root, progress=progress
            )
            return client.run()
    except NoSource as exc:
        return _failed(paths, str(exc))


@dataclass(frozen=True)
class ContentStatus:
    content_version: int
    content_date: str | None
    age_days: float | None
    stale: bool
    last_check: str | None
    last_result: str | None
    last_reason: str | None
    previous_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def content_status(paths: AegisPaths) -> ContentStatus:
    """The content version in force, its age (a warning past 7 days), the last check."""
    store = ContentStore(paths)
    version, created, previous = 0, None, None
    try:
        inst = store.current()
        if inst is not None:
            version = inst.version
            created = store.index_of(inst).created or inst.activated
            prev = store.previous()
            previous = prev.version if prev else 0
    except (ContentError, OSError):
        pass
    if created is None:  # the bundled content: the date of its newest file
        stamps = [os.stat(p).st_mtime for _, p in content_files(bundled_resources())]
        if stamps:
            created = datetime.fromtimestamp(max(stamps), UTC).isoformat(timespec="seconds")
    when = _parse(created)
    age = (datetime.now(UTC) - when).total_seconds() / 86400 if when else None
    last = store.last_check()
    return ContentStatus(
        content_version=version,
        content_date=created,
        age_days=round(age, 1) if age is not None else None,
        stale=age is not None and age > STALE_DAYS,
        last_check=last.get("last_check"),
        last_result=last.get("result"),
        last_reason=last.get("reason"),
        previous_version=previous,
    )
