"""``aegis quarantine list|restore|delete|purge``: the encrypted quarantine vault."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from ..engine import Engine

if TYPE_CHECKING:  # the vault brings keyring and cryptography: imported when a command runs
    from ..quarantine import VaultItem


def _warn(message: str) -> None:
    print(f"aegis: warning: {message}", file=sys.stderr)


class _Session:
    """The profile's vault (recovered after a crash) and the engine's outcome service."""

    def __init__(self) -> None:
        self.engine = Engine(on_warning=_warn)
        self.settings = self.engine.settings.quarantine
        self.vault = self.engine.quarantine
        self.outcomes = self.engine.outcomes
        self.vault.recover()

    def auto_purge(self) -> None:
        self.outcomes.auto_purge(self.settings.purge_days, _warn)

    def close(self) -> None:
        self.engine.close()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quarantine",
        help="list, restore or delete quarantined files",
        description="Files in quarantine are encrypted and cannot run. Restoring never "
        "overwrites a file: when the name is taken, the file comes back as 'name (restored)'.",
    )
    actions = parser.add_subparsers(dest="quarantine_action", metavar="ACTION", required=True)

    p_list = actions.add_parser("list", help="list quarantined files")
    p_list.add_argument("--json", action="store_true", help="print a JSON list")
    p_list.set_defaults(run=run_list)

    p_restore = actions.add_parser("restore", help="put a file back where it was (or --to DIR)")
    p_restore.add_argument("id", metavar="ID", help="item id (or a unique prefix)")
    p_restore.add_argument("--to", metavar="DIR", help="restore into this existing folder")
    p_restore.add_argument(
        "--allow",
        action="store_true",
        help="keep the restored file: no scan acts on it again while its content is unchanged",
    )
    p_restore.set_defaults(run=run_restore)

    p_delete = actions.add_parser("delete", help="delete a quarantined file for good")
    p_delete.add_argument("id", metavar="ID", help="item id (or a unique prefix)")
    p_delete.set_defaults(run=run_delete)

    p_purge = actions.add_parser("purge", help="delete items older than N days")
    p_purge.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="age in days (default: [quarantine] purge_days, 30); 0 deletes every item",
    )
    p_purge.set_defaults(run=run_purge)


def _when(item: VaultItem) -> str:
    return item.quarantined_at.astimezone().strftime("%Y-%m-%d %H:%M")


def _names(item: VaultItem) -> str:
    names = [str(d.get("name", "?")) for d in item.detections]
    return ", ".join(dict.fromkeys(names)) or item.verdict


def run_list(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        session.auto_purge()
        listing = session.vault.listing()
    finally:
        session.close()
    items = listing.items
    # Unreadable items were named on stderr (warnings); exit 2 says not everything was listed.
    code = 2 if listing.unreadable else 0
    if args.json:
        print(json.dumps([it.to_public_dict() for it in items], indent=2, ensure_ascii=False))
        return code
    if not items and not listing.unreadable:
        print("The quarantine is empty.")
        return 0
    for it in items:
        print(f"{it.id}  {_when(it)}  {it.size:>10} B  {_names(it)}")
        print(f"    {it.display_path}")
    print(f"{len(items)} item(s). Restore with: aegis quarantine restore ID [--to DIR]")
    if listing.unreadable:
        print(f"{len(listing.unreadable)} item(s) cannot be read:")
        for bad in listing.unreadable:
            print(f"{bad.id}  {bad.reason}")
        print("Remove an unreadable item with: aegis quarantine delete ID")
    return code


def run_restore(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        result = session.outcomes.restore(args.id, to_dir=args.to, allow=args.allow)
    finally:
        session.close()
    from ..quarantine.safe_fs import printable

    item, restored = result.item, result.path
    print(f"Restored {item.id} to {printable(restored)}")
    if printable(restored) != item.display_path and args.to is None:
        print(f"(the original name {item.display_path} was taken; nothing was overwritten)")
    if result.allowed:
        print("Allowed: scans will not act on this file again unless its content changes.")
    elif result.allow_error is not None:
        print(f"aegis: could not allow it: {result.allow_error}", file=sys.stderr)
        return 2
    return 0


def run_delete(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        result = session.outcomes.delete(args.id)
    finally:
        session.close()
    if result.item is None:
        print(f"Deleted damaged item {result.item_id}.")
    else:
        print(f"Deleted {result.item.id} ({result.item.display_path}) for good.")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        days = args.days if args.days is not None else session.settings.purge_days
        if args.days is None and days == 0:
            print("Automatic purge is off ([quarantine] purge_days = 0); give --days N.")
            return 0
        purged = session.outcomes.purge(days)
    finally:
        session.close()
    now = datetime.now().astimezone()
    print(
        f"Purged {len(purged)} item(s) quarantined {days} or more days before {now:%Y-%m-%d %H:%M}."
    )
    return 0
