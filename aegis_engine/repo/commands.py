"""``aegis-repo init | release | timestamp | rotate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .publish import record_base, release
from .tufrepo import ROLES, RepoError, TufRepo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("init", help="create keys (if absent) and an empty signed repository")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--keys", type=Path, required=True, help="folder of private keys (0600)")
    p.add_argument("--root-keys", type=int, default=1, help="number of root keys (default 1)")
    p.add_argument("--root-threshold", type=int, default=1, help="root signatures needed")
    p.add_argument(
        "--base",
        type=Path,
        help="content clients already have (the shipped resources/): version 0, the base "
        "of the first deltas",
    )
    p.set_defaults(run=run_init)

    p = sub.add_parser(
        "release",
        help="publish a content folder as the next version, and/or a build of the program",
    )
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--content", type=Path, metavar="DIR", help="content: rules/, hashes/ ...")
    p.add_argument(
        "--keep",
        type=int,
        default=None,
        help="deltas from this many versions back (default 3 for content, 1 for the app)",
    )
    p.add_argument(
        "--app", type=Path, metavar="BUNDLE_DIR", help="a build of the program (dist/aegis/)"
    )
    p.add_argument(
        "--app-version", metavar="VERSION", help="default: from the bundle's aegis-*.dist-info"
    )
    p.add_argument(
        "--platform", metavar="OS-ARCH", help="the app's platform (default: this machine's)"
    )
    p.set_defaults(run=run_release)

    p = sub.add_parser("timestamp", help="re-sign the timestamp (run it daily)")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--keys", type=Path, required=True)
    p.set_defaults(run=run_timestamp)

    p = sub.add_parser("rotate", help="replace a role's key (a new root signed by old and new)")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--keys", type=Path, required=True)
    p.add_argument("--role", choices=ROLES, required=True)
    p.set_defaults(run=run_rotate)


def run_init(args: argparse.Namespace) -> int:
    TufRepo(args.repo, args.keys).init(root_keys=args.root_keys, root_threshold=args.root_threshold)
    if args.base is not None:
        record_base(args.repo, args.base)
    print(f"created {args.repo} (root: {args.repo / 'metadata' / '1.root.json'})")
    return 0


def run_release(args: argparse.Namespace) -> int:
    if args.content is None and args.app is None:
        raise RepoError("nothing to release: give --content DIR and/or --app BUNDLE_DIR")
    if args.content is not None:
        report = release(
            args.repo, args.keys, args.content, keep=3 if args.keep is None else args.keep
        )
        print(json.dumps(report.__dict__))
    if args.app is not None:
        from .app_publish import release_app

        app = release_app(
            args.repo,
            args.keys,
            args.app,
            version=args.app_version,
            platform=args.platform,
            keep=1 if args.keep is None else args.keep,
        )
        print(json.dumps({"app": app.__dict__}))
    return 0


def run_timestamp(args: argparse.Namespace) -> int:
    TufRepo(args.repo, args.keys).timestamp()
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    TufRepo(args.repo, args.keys).rotate(args.role)
    return 0
