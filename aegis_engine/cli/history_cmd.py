"""``aegis history [--json] [--since WHEN]`` and ``aegis history export --ecs FILE``."""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
from pathlib import Path

from ..atomic import atomic_write
from ..errors import HistoryError
from ..history import History, parse_since
from ..paths import AegisPaths


def _warn(message: str) -> None:
    print(f"aegis: warning: {message}", file=sys.stderr)


_WHEN_HELP = (
    "only events since WHEN: a date (2026-11-01), a time (2026-11-01T08:00) "
    "or an age (7d, 24h, 30m)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show detections, actions and your decisions",
        description="The detection history is kept on this computer only.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--since", metavar="WHEN", help=_WHEN_HELP)
    parser.set_defaults(run=run_show)
    actions = parser.add_subparsers(dest="history_action", metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the history as JSON lines for a SIEM",
        description="Writes one JSON object per event with Elastic Common Schema fields "
        "(Elastic, Wazuh and Splunk can ingest it). Host names are left out unless asked for.",
    )
    export.add_argument("--ecs", metavar="FILE", required=True, help="output file ('-': stdout)")
    export.add_argument("--since", metavar="WHEN", dest="export_since", help=_WHEN_HELP)
    export.add_argument(
        "--include-hostname",
        action="store_true",
        help="add host.hostname (useful when several machines feed one SIEM)",
    )
    export.set_defaults(run=run_export)


def _history() -> History:
    return History(AegisPaths.default().history_file, warn=_warn)


def run_show(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    with _history() as history:
        events = history.events(since=since)
    if args.json:
        print(json.dumps([e.to_dict() for e in events], indent=2, ensure_ascii=False))
        return 0
    if not events:
        print("No events" + (f" since {args.since}." if args.since else " yet."))
        return 0
    for event in events:
        print(event.summary())
    return 0


def run_export(args: argparse.Namespace) -> int:
    if args.ecs != "-":
        parent = Path(args.ecs).parent
        if not parent.is_dir():
            # Create nothing the user did not ask for: a typo must not become a new folder.
            raise HistoryError(f"cannot write {args.ecs}: folder {parent} does not exist")
    when = args.export_since or args.since
    since = parse_since(when) if when else None
    hostname = platform.node() if args.include_hostname else None
    buffer = io.StringIO()
    with _history() as history:
        count = history.export_ecs(buffer, since=since, hostname=hostname)
    if args.ecs == "-":
        sys.stdout.write(buffer.getvalue())
    else:
        try:
            atomic_write(Path(args.ecs), buffer.getvalue().encode("utf-8"))
        except OSError as exc:
            raise HistoryError(f"cannot write {args.ecs}: {exc}") from exc
        print(f"Exported {count} event(s) to {args.ecs}", file=sys.stderr)
    return 0
