"""``aegis update [--server URL] [--root ROOT_JSON] [--from DIR] [--json] [--rollback] [--app]``.

``--app`` checks for a new build of the program instead (an installed bundle only) and stages
it: it starts the next time Aegis starts (exit 0 staged or current, 1 refused, 2 failed or
not available).

Exit status: 0 updated or already current, 1 refused (verification failed: nothing changed),
2 failed (network, disk, configuration: nothing changed). Scanning goes on with the content
in use whatever happens.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from ..paths import AegisPaths

Progress = Callable[[str], None]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "update",
        help="check for signed signature/rule/model updates and install them",
        description="Download the latest signed content (deltas when smaller), verify it, "
        "test-load it and switch to it atomically; the previous version is kept.",
    )
    p.add_argument("--server", metavar="URL", help="update repository (default: settings)")
    p.add_argument("--root", type=Path, metavar="ROOT_JSON", help="trusted root metadata")
    p.add_argument("--from", dest="source", type=Path, metavar="DIR", help="a copied repository")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--rollback", action="store_true", help="go back to the previous version")
    p.add_argument(
        "--status", action="store_true", help="show the content version, its age, the last check"
    )
    p.add_argument(
        "--app",
        action="store_true",
        help="check for a new version of the program itself and stage it for the next start",
    )
    p.add_argument(
        "--app-dir",
        type=Path,
        metavar="LIB",
        help="with --app: the installation folder (default: the running bundle's)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=run_update)


def run_update(args: argparse.Namespace) -> int:
    from ..updates import check_for_updates, rollback

    paths = AegisPaths.default()
    if args.status:
        return _status(paths, as_json=args.json)

    def progress(message: str) -> None:
        if not args.json and not args.quiet:
            print(f"aegis: {message}", file=sys.stderr)

    if args.app:
        return _app_update(args, paths, progress)
    if args.rollback:
        result = rollback(paths)
    else:
        result = check_for_updates(
            paths,
            server=args.server,
            root_file=args.root,
            source_dir=args.source,
            progress=progress,
        )
    lines = {
        "updated": f"Updated: content version {result.version}",
        "current": f"Up to date: content version {result.version}",
        "refused": "Update REFUSED (nothing changed, scanning continues with version "
        f"{result.version})",
        "failed": "Update failed (nothing changed, scanning continues with version "
        f"{result.version})",
    }
    return _outcome(result, lines, as_json=args.json, done="updated")


def _status(paths: AegisPaths, *, as_json: bool) -> int:
    from ..updates import content_status

    st = content_status(paths)
    if as_json:
        print(json.dumps(st.to_dict()))
        return 0
    age = f"{st.age_days:g} days old" if st.age_days is not None else "age unknown"
    kind = "updated" if st.content_version else "bundled"
    print(f"Content version {st.content_version} ({kind}), {age}")
    if st.stale:
        print("Warning: the signatures are more than 7 days old; run 'aegis update'.")
    if st.last_check:
        print(f"Last check {st.last_check}: {st.last_result} ({st.last_reason})")
    else:
        print("Never checked for updates.")
    return 0


def _app_update(args: argparse.Namespace, paths: AegisPaths, progress: Progress) -> int:
    from ..updates.app_service import check_for_app_update

    result = check_for_app_update(
        paths,
        server=args.server,
        root_file=args.root,
        source_dir=args.source,
        progress=progress,
        app_dir=args.app_dir,
    )
    lines = {
        "staged": f"New version {result.version} staged",
        "current": f"Up to date: Aegis {result.installed_version}",
        "refused": "App update REFUSED (nothing changed)",
        "failed": "App update failed (nothing changed)",
        "unavailable": "App update not available",
    }
    return _outcome(result, lines, as_json=args.json, done="staged")


class _Outcome(Protocol):
    """An update's or an app update's result, as both clients return it."""

    @property
    def result(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def bytes_downloaded(self) -> int: ...
    def to_dict(self) -> dict[str, object]: ...


def _outcome(result: _Outcome, lines: Mapping[str, str], *, as_json: bool, done: str) -> int:
    """Print the outcome (one JSON object, or its line with the reason and the download);
    the exit status: 0 ``done`` or current, 1 refused, 2 otherwise."""
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        line = lines[result.result]
        print(f"{line}: {result.reason} [{result.bytes_downloaded} bytes downloaded]")
    return {done: 0, "current": 0, "refused": 1}.get(result.result, 2)
