"""``aegis quarantine list|restore|delete|purge``: the encrypted quarantine vault."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING

from ..config import load_settings
from ..errors import AegisError
from ..history import History
from ..paths import AegisPaths

if TYPE_CHECKING:  # the vault brings keyring and cryptography: imported when a command runs
    from ..quarantine import VaultItem


def _warn(message: str) -> None:
    print(f"aegis: warning: {message}", file=sys.stderr)


class _Session:
    """The profile's vault and history, with recovery and the automatic purge done."""

    def __init__(self) -> None:
        paths = AegisPaths.default()
        from ..quarantine import QuarantineSettings, Vault

        self.settings = QuarantineSettings.from_settings(load_settings(paths.settings_file))
        self.vault = Vault.for_paths(paths, warn=_warn, use_keyring=self.settings.use_keyring)
        self.history = History(paths.history_file, warn=_warn)
        self.vault.recover()

    def auto_purge(self) -> None:
        from ..response import auto_purge

        auto_purge(self.vault, self.history, self.settings.purge_days, _warn)

    def close(self) -> None:
        self.history.close()


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
        item = session.vault.get(args.id)
        session.history.record_user_decision(
            "restore",
            item.original_path,
            verdict=item.verdict,
            sha256=item.sha256,
            item_id=item.id,
        )
        try:
            restored = session.vault.restore(item.id, to_dir=args.to)
        except AegisError as exc:
            session.history.record_action(
                "restore",
                item.original_path,
                outcome="failure",
                item_id=item.id,
                sha256=item.sha256,
                message=str(exc),
            )
            raise
        session.history.record_action(
            "restore",
            restored,
            outcome="success",
            item_id=item.id,
            sha256=item.sha256,
            size=item.size,
        )
    finally:
        session.close()
    from ..quarantine.safe_fs import printable

    print(f"Restored {item.id} to {printable(restored)}")
    if printable(restored) != item.display_path and args.to is None:
        print(f"(the original name {item.display_path} was taken; nothing was overwritten)")
    return 0


def run_delete(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        target = args.id
        item = session.vault.delete(target)
        where = item.original_path if item is not None else f"damaged item {target}"
        session.history.record_user_decision(
            "delete",
            where,
            item_id=item.id if item else target,
            sha256=item.sha256 if item else None,
        )
        session.history.record_action(
            "delete", where, outcome="success", item_id=item.id if item else target
        )
    finally:
        session.close()
    if item is None:
        print(f"Deleted damaged item {target}.")
    else:
        print(f"Deleted {item.id} ({item.display_path}) for good.")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    session = _Session()
    try:
        days = args.days if args.days is not None else session.settings.purge_days
        if args.days is None and days == 0:
            print("Automatic purge is off ([quarantine] purge_days = 0); give --days N.")
            return 0
        purged = session.vault.purge(days)
        for item in purged:
            session.history.record_action(
                "purge",
                item.original_path,
                outcome="success",
                item_id=item.id,
                sha256=item.sha256,
                size=item.size,
                message=f"older than {days} days",
            )
    finally:
        session.close()
    now = datetime.now().astimezone()
    print(
        f"Purged {len(purged)} item(s) quarantined {days} or more days before {now:%Y-%m-%d %H:%M}."
    )
    return 0
