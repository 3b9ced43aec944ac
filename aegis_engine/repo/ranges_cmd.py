"""``aegis-repo ranges OUT --hashes FILE... [--known-good FILE...]``: the static range files of
the k-anonymous cloud look-up service (see :mod:`aegis_engine.privacy.ranges`).

Hash lists are ClamAV ``.hsb``/``.hdb`` style (``HASH:SIZE:NAME``); only SHA-256 entries go
into range files. Any web server or CDN can serve OUT under the ``[cloud] lookup_url`` of the
clients; for prefixes without entries it should answer with ``range/empty`` (or use
``--all-prefixes``, which writes every prefix as a hard link to it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ranges",
        help="write the static range files of the cloud look-up service",
        description="Write k-anonymous range files (one per 5-hex-digit SHA-256 prefix, all "
        "padded to one size) from known-bad and known-good hash lists.",
    )
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument(
        "--hashes", type=Path, nargs="+", required=True, metavar="FILE", help="known-bad lists"
    )
    p.add_argument(
        "--known-good", type=Path, nargs="+", default=[], metavar="FILE", help="known-good lists"
    )
    p.add_argument(
        "--all-prefixes",
        action="store_true",
        help="also write every empty prefix (hard links to range/empty) for plain static hosts",
    )
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(run=run_ranges)


def run_ranges(args: argparse.Namespace) -> int:
    from ..privacy.ranges import read_lists, write_ranges

    def warn(message: str) -> None:
        print(f"aegis-repo: warning: {message}", file=sys.stderr)

    bad = read_lists(args.hashes, warn)
    good = read_lists(args.known_good, warn)
    result = write_ranges(args.out, bad, good, all_prefixes=args.all_prefixes)
    summary = {
        "out": str(result.out),
        "prefixes": result.prefixes,
        "known_bad": result.known_bad,
        "known_good": result.known_good,
        "slots": result.slots,
        "file_size": result.file_size,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{result.prefixes} range files of {result.file_size} bytes each "
            f"({result.known_bad} known-bad, {result.known_good} known-good) in {result.out}; "
            "serve range/empty for any other prefix"
        )
    return 0
