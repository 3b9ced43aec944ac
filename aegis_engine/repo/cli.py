"""``aegis-repo``: the publishing tool for update repositories (static files).

Sub-commands live in their own modules (``COMMAND_MODULES``), each with ``register(sub)``
whose parser sets ``run=callable(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ..errors import AegisError

COMMAND_MODULES: tuple[str, ...] = ("aegis_engine.repo.commands", "aegis_engine.repo.ranges_cmd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aegis-repo",
        description="Publish Aegis content updates as a signed TUF repository of static files.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return 2
    try:
        code: int = run(args)
    except (AegisError, OSError) as exc:
        print(f"aegis-repo: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
