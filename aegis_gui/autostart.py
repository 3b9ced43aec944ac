""" "Start Aegis when I log in": the XDG autostart entry (``$XDG_CONFIG_HOME/autostart``).

The entry file is the only record of the choice (desktop sessions read it; nothing else needs
to), so the Settings window shows whether it exists and writes or removes it. It starts the
program this process runs as: the bundle's ``aegis-tray``, the ``aegis-tray`` script of the
environment it was installed into, or ``python -m aegis_gui.app``.

Windows (the installer's autostart task, a registry Run value) and macOS (a login item) are
set up by their installers; there ``supported()`` is False and the setting is not shown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aegis_engine.atomic import atomic_write

FILE_NAME = "aegis-tray.desktop"


def supported() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


def autostart_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "autostart"


def entry_path() -> Path:
    return autostart_dir() / FILE_NAME


def tray_command() -> list[str]:
    """How to start this tray app again."""
    exe = Path(sys.executable)
    if getattr(sys, "frozen", False):
        tray = exe.with_name("aegis-tray")
        return [str(tray if tray.exists() else exe)]
    script = exe.with_name("aegis-tray")
    if script.exists():
        return [str(script)]
    return [str(exe), "-m", "aegis_gui.app"]


def _exec_line(argv: list[str]) -> str:
    """The Exec key's quoting (Desktop Entry spec): double quotes around any argument
    with a reserved character; ``%`` doubled."""
    out = []
    for arg in argv:
        arg = arg.replace("%", "%%")
        if any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`"):
            arg = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg) + '"'
        out.append(arg)
    return " ".join(out)


def entry_text(argv: list[str] | None = None) -> str:
    command = _exec_line(argv or tray_command())
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Aegis\n"
        "Comment=Antivirus: real-time protection in the system tray\n"
        f"Exec={command}\n"
        "Icon=aegis\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
        "X-GNOME-Autostart-Delay=5\n"
        "X-KDE-autostart-phase=2\n"
    )


def is_enabled() -> bool:
    path = entry_path()
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text


def set_enabled(on: bool, argv: list[str] | None = None) -> None:
    """Write (``on``) or remove the entry. Raises OSError when the folder is not writable."""
    path = entry_path()
    if on:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, entry_text(argv).encode("utf-8"))
    else:
        path.unlink(missing_ok=True)
