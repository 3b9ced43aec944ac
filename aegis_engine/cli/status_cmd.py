"""``aegis status [--json]``: versions, where the data lives, where the quarantine key is,
and the warnings worth keeping in view. The data comes from :func:`aegis_engine.status.
collect_status`, which the tray app shows too."""

from __future__ import annotations

import argparse
import json
import sys

from ..status import collect_status


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="versions, data locations, quarantine key and warnings",
        description="Show Aegis's versions, where its data lives, whether the quarantine "
        "key is in the OS keyring, and warnings. Creates nothing.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = collect_status()
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    out.write(report.version_line() + "\n\n")
    for name, where in report.locations.items():
        out.write(f"{name + ':':<12} {where}\n")
    key = report.vault_key
    if report.vault_key_file:
        key = f"{key} ({report.vault_key_file})"
    out.write(f"\nquarantine key: {key}\n")
    up = report.updates
    if up:
        age = f", {up['age_days']} days old" if up.get("age_days") is not None else ""
        out.write(f"content:        version {up.get('content_version', 0)}{age}\n")
        last = up.get("last_check")
        result = up.get("last_result") or ""
        reason = f" ({up['last_reason']})" if up.get("last_reason") else ""
        outcome = f": {result}{reason}" if last else ""
        out.write(f"last update check: {last or 'never'}{outcome}\n")
        app = up.get("app")
        if app:
            out.write(f"program:        version {app['app_version']} in {app['installed_at']}\n")
            if app.get("staged_version"):
                out.write(
                    f"                version {app['staged_version']} staged: starts next time\n"
                )
            if app.get("previous_version"):
                out.write(f"                previous version {app['previous_version']} kept\n")
    if report.warnings:
        out.write("\nwarnings:\n")
        for w in report.warnings:
            out.write(f"  - {w}\n")
    return 0
