"""Engine-level entry points of the program's own updates: check and stage, status.

``aegis update --app``, the tray app's "Check for updates" and ``aegis status`` call these.
The check runs only for a build installed in the versioned layout (a frozen bundle, see
:mod:`.app_layout`), or for the installation folder named by ``app_dir`` (tests, tools).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Unpack

from ..paths import AegisPaths
from .app_client import AppUpdateClient, AppUpdateResult
from .app_layout import AppLayout
from .client import Progress
from .service import NoSource, SourceOptions, update_source

__all__ = ["app_status", "check_for_app_update"]


def check_for_app_update(
    paths: AegisPaths,
    *,
    app_dir: Path | None = None,
    platform: str | None = None,
    stage: bool = True,
    progress: Progress | None = None,
    **source: Unpack[SourceOptions],
) -> AppUpdateResult:
    """One check for a new build; stages it when there is one (unless ``stage`` is False).
    Never raises for an update problem: the result says ``refused``, ``failed`` or
    ``unavailable`` and why."""
    layout = AppLayout(app_dir) if app_dir is not None else AppLayout.of_running()
    if layout is None:
        return AppUpdateResult(
            "unavailable",
            None,
            None,
            0,
            "Aegis is not running from an installed bundle (install.sh); "
            "update it the way it was installed",
        )
    try:
        with update_source(paths, **source) as src:
            client = AppUpdateClient(
                paths,
                layout,
                src.fetcher,
                base_url=src.base_url,
                root=src.root,
                platform=platform,
                progress=progress,
                stage=stage,
            )
            return client.run()
    except NoSource as exc:
        return AppUpdateResult(exc.result, None, None, 0, str(exc))


def app_status(app_dir: Path | None = None) -> dict[str, Any] | None:
    """The installed build, the staged update, the fall-back; None when not installed."""
    layout = AppLayout(app_dir) if app_dir is not None else AppLayout.of_running()
    if layout is None or not layout.is_installed():
        return None
    return layout.status()
