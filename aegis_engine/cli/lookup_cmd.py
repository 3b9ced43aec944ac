"""``aegis lookup [--json] FILE...``: ask the configured reputation service about files, by
k-anonymous range look-up (only the first 5 hex digits of each SHA-256 leave this machine).

Exit 1 when a file is known-bad, 0 otherwise, 2 when a look-up could not be made (no consent:
refused before any connection, with how to allow it; no service configured; server down;
certificate pin mismatch). A known-bad file is always printed, whatever else failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from ..errors import LookupFailed, PrivacyError
from ..paths import AegisPaths


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lookup",
        help="look files up in the reputation service (sends a 5-character prefix only)",
        description="Look files up by k-anonymous range query: only the first 5 of the 64 "
        "hex digits of each file's SHA-256 are sent; the answer lists every known hash with "
        "that prefix and the match is made here. Needs 'aegis consent grant cloud-lookup' "
        "and [cloud] lookup_url in settings.toml. Exit 1: known-bad; 0: not known-bad; "
        "2: could not look up.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.set_defaults(run=run)


def _sha256(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise OSError("not a regular file")
        digest = hashlib.sha256()
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run(args: argparse.Namespace) -> int:
    from ..privacy import ConsentStore
    from ..privacy.reputation import make_lookup

    paths = AegisPaths.default()

    def warn(message: str) -> None:
        print(f"aegis: warning: {message}", file=sys.stderr)

    ConsentStore.for_paths(paths, warn=warn).require("cloud-lookup")  # before any socket
    lookup = make_lookup(paths, warn=warn)
    found = failed = False
    for path in args.files:
        row: dict[str, Any] = {"file": str(path)}
        try:
            digest = _sha256(path)
        except OSError as exc:
            row.update(reputation="error", error=f"cannot read: {exc.strerror or exc}")
            failed = True
            _show(args, row)
            continue
        row["sha256"] = digest
        try:
            result = lookup.lookup(digest)
        except (LookupFailed, PrivacyError) as exc:
            row.update(reputation="error", error=str(exc))
            failed = True
            _show(args, row)
            continue
        row.update(reputation=result.reputation.value, name=result.name, cached=result.cached)
        found = found or result.reputation.value == "known-bad"
        _show(args, row)
    if found:
        return 1
    return 2 if failed else 0


def _show(args: argparse.Namespace, row: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(row, ensure_ascii=False), flush=True)
        return
    from .output import display_path

    where = display_path(row["file"])
    rep = row["reputation"]
    if rep == "error":
        print(f"{where}: not looked up: {row['error']}", flush=True)
    elif rep == "known-bad":
        print(f"{where}: KNOWN BAD {row.get('name') or ''}".rstrip(), flush=True)
    else:
        print(f"{where}: {rep}", flush=True)
