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
    "lookup_cmd",
    "privacy_cmd",
    "status_cmd",
)


class _VersionAction(argparse.Action):
    """``--version``: computed only when asked (it reads the signature content)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        from ..status import collect_status

        try:
            line = collect_status().version_line()
        except AegisError as exc:
            from ..status import aegis_version

            line = f"aegis {aegis_version()} (signatures unknown: {exc})"
        print(line)
        parser.exit(0)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or only for ``command`` (so that ``aegis scan`` does not
    import what ``aegis monitor`` needs: start-up time is part of every scan)."""
    parser = argparse.ArgumentParser(
        prog="aegis",
        description="Aegis: a privacy-first, lightweight antivirus.",
    )
    parser.add_argument("--version", action=_VersionAction)
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

    from ..privacy.crash import install_excepthook

    install_excepthook("cli")  # threads' uncaught errors too; written locally first
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
    except Exception as exc:  # a bug: one clear line, the traceback in a local crash report
        return _unexpected(exc, args.command)
    return code


def _unexpected(exc: Exception, command: str | None) -> int:
    from .. import crashlog
    from ..paths import AegisPaths

    try:
        where = f"details are in {crashlog.write_report(exc, command=command)}"
    except Exception as err:  # the crash log is best effort: the one line is what counts
        where = f"no crash report could be written ({err})"
    from ..privacy.crash import queue_report

    queue_report(AegisPaths.default(), exc, "cli")  # sent later, only with consent
    print(
        f"aegis: error: unexpected {type(exc).__name__}: {exc}; {where}. Please report it.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
