"""The ``aegis`` command line: one sub-command per module, each a thin client of Engine."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import AegisError

# Each module defines ``register(subparsers)``; its parser sets ``run=callable(args) -> int``.
COMMAND_MODULES: tuple[str, ...] = (
    "scan_cmd",
    "quarantine_cmd",
    "history_cmd",
    "consent_cmd",
    "monitor_cmd",
    "update_cmd",
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or only for ``command`` (so that ``aegis scan`` does not
    import what ``aegis monitor`` needs: start-up time is part of every scan)."""
    parser = argparse.ArgumentParser(
        prog="aegis",
        description="Aegis: a privacy-first, lightweight antivirus.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = COMMAND_MODULES
    if command is not None and f"{command}_cmd" in COMMAND_MODULES:
        modules = (f"{command}_cmd",)
    for name in modules:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    multiprocessing.freeze_support()  # scans run in worker processes (a frozen build)
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(words)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        code: int = run(args)
    except AegisError as exc:
        print(f"aegis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aegis: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
