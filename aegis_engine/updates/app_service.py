"""Engine-level entry points of the program's own updates: check and stage, status.

``aegis update --app``, the tray app's "Check for updates" and ``aegis status`` call these.
The check runs only for a build installed in the versioned layout (a frozen bundle, see
:mod:`.app_layout`), or for the installation folder named by ``app_dir`` (tests, tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import AegisError
from ..net import ConsentGate, NetClient, update_settings_from
from ..paths import AegisPaths
from ..settings import SettingsStore
from .app_client import AppUpdateClient, AppUpdateResult
from .app_layout import AppLayout
from .client import Progress, shipped_root
from .fetcher import OFFLINE_BASE, DirFetcher, NetFetcher

__all__ = ["app_status", "check_for_app_update"]


def _unavailable(reason: str, result: str = "unavailable") -> AppUpdateResult:
    return AppUpdateResult(result, None, None, 0, reason)


def check_for_app_update(
    paths: AegisPaths,
    *,
    server: str | None = None,
    root_file: Path | None = None,
    source_dir: Path | None = None,
    consent: ConsentGate | None = None,
    progress: Progress | None = None,
    app_dir: Path | None = None,
    platform: str | None = None,
) -> AppUpdateResult:
    """One check for a new build; stages it when there is one. Never raises for an update
    problem: the result says ``refused``, ``failed`` or ``unavailable`` and why."""
    layout = AppLayout(app_dir) if app_dir is not None else AppLayout.of_running()
    if layout is None:
        return _unavailable(
            "Aegis is not running from an installed bundle (install.sh); "
            "update it the way it was installed"
        )
    try:
        settings = update_settings_from(SettingsStore(paths.settings_file).current.values)
    except AegisError as exc:
        return _unavailable(f"update settings: {exc}", "failed")
    root_path = root_file or settings.root
    if root_path is not None:
        try:
            root = root_path.read_bytes()
        except OSError as exc:
            return _unavailable(f"cannot read the trusted root {root_path}: {exc}", "failed")
    else:
        shipped = shipped_root()
        if shipped is None:
            return _unavailable("no trusted root: Aegis ships none and --root was not given")
        root = shipped
    if source_dir is not None:
        client = AppUpdateClient(
            paths,
            layout,
            DirFetcher(source_dir),
            base_url=OFFLINE_BASE,
            root=root,
            platform=platform,
            progress=progress,
        )
        return client.run()
    url = server or settings.server
    if not url:
        return _unavailable("no update server is configured ([updates] server in settings)")
    if consent is None:
        from ..privacy import ConsentStore

        consent = ConsentStore.for_paths(paths)
    with NetClient(settings.net, consent) as net:
        client = AppUpdateClient(
            paths,
            layout,
            NetFetcher(net),
            base_url=url,
            root=root,
            platform=platform,
            progress=progress,
        )
        return client.run()


def app_status(app_dir: Path | None = None) -> dict[str, Any] | None:
    """The installed build, the staged update, the fall-back; None when not installed."""
    layout = AppLayout(app_dir) if app_dir is not None else AppLayout.of_running()
    if layout is None or not layout.is_installed():
        return None
    return layout.status()
