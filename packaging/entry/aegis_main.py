"""Frozen entry point of the bundle: one runtime, two programs.

The executable's name decides which program runs: ``aegis-tray`` (the tray app) or ``aegis``
(the command line). On Linux ``aegis-tray`` is a symlink to ``aegis``; on Windows and macOS
they are two executables built from this script.

``multiprocessing.freeze_support()`` comes first, before Qt or the engine is imported: a
frozen program is its own Python, so scan workers (spawn or forkserver) and multiprocessing's
helpers (forkserver, resource tracker) are started as this executable with special arguments,
and must run that code instead of a second tray app or command line.

Once the program's code and libraries have loaded, :func:`confirm_started` clears the start
marker the launcher (``packaging/linux/aegis-launcher.sh``) wrote for a newly switched-in
build: a build that never gets this far is replaced by the previous one at the next start.
"""

import multiprocessing
import os
import sys
from pathlib import Path


def program_name(argv0: str) -> str:
    """``aegis-tray`` or ``aegis`` from the name this executable was started as."""
    name = os.path.basename(argv0).lower()
    for suffix in (".exe",):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return "aegis-tray" if name.startswith("aegis-tray") else "aegis"


def confirm_started() -> None:
    """This build runs: keep it (see aegis_engine.updates.app_layout)."""
    try:
        from aegis_engine.updates.app_layout import confirm_started as confirm

        confirm(Path(sys.executable).resolve().parent)
    except Exception:  # never stop the program for this
        pass


if __name__ == "__main__":
    multiprocessing.freeze_support()
    if program_name(sys.argv[0]) == "aegis-tray":
        from aegis_gui.app import main
    else:
        from aegis_engine.cli import main
    confirm_started()
    sys.exit(main())
