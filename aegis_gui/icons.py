"""The project's SVG icons (``resources/icons``): one shield per tray state, and the app icon."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon


class TrayState(StrEnum):
    PROTECTED = "protected"
    PAUSED = "paused"
    THREAT = "threat"
    UPDATING = "updating"
    ERROR = "error"


def icons_dir() -> Path:
    """``resources/icons`` from the installed ``aegis_resources`` package or the source tree."""
    try:
        from importlib.resources import files

        folder = Path(str(files("aegis_resources") / "icons"))
        if folder.is_dir():
            return folder
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "resources" / "icons"


def icon_path(name: str) -> Path:
    return icons_dir() / f"{name}.svg"


@lru_cache(maxsize=16)
def _icon(name: str) -> QIcon:
    path = icon_path(name)
    icon = QIcon(str(path))
    if icon.isNull():  # pragma: no cover - a broken install; Qt still needs an icon
        raise FileNotFoundError(f"icon {path} cannot be loaded")
    return icon


def state_icon(state: TrayState) -> QIcon:
    return _icon(f"shield-{state.value}")


def app_icon() -> QIcon:
    return _icon("aegis")
