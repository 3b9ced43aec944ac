"""What the vault remembers about each item (kept encrypted inside the item file)."""

from __future__ import annotations

import base64
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import VaultIntegrityError
from .safe_fs import printable

FORMAT = 1


def encode_path(path: str) -> str:
    """Base64 of the path's bytes: any name (non-UTF-8 too) survives JSON unchanged."""
    return base64.b64encode(os.fsencode(path)).decode("ascii")


def decode_path(text: str) -> str:
    return os.fsdecode(base64.b64decode(text.encode("ascii"), validate=True))


def owner_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class VaultItem:
    """One quarantined file. ``original_path`` is a str that may hold surrogate escapes
    (``os.fsdecode``); use :attr:`display_path` for people and JSON."""

    id: str
    original_path: str
    size: int
    sha256: str
    mode: int
    uid: int
    gid: int
    owner: str | None
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    quarantined_at: datetime
    verdict: str = "malicious"
    detections: tuple[Mapping[str, Any], ...] = ()
    explanation: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def display_path(self) -> str:
        return printable(self.original_path)

    @property
    def name(self) -> str:
        return os.path.basename(self.original_path)

    def age_days(self, now: datetime) -> float:
        return (now - self.quarantined_at).total_seconds() / 86400.0

    def to_metadata(self) -> dict[str, Any]:
        """The authenticated JSON stored in the item file."""
        return {
            "format": FORMAT,
            "id": self.id,
            "original_path_b64": encode_path(self.original_path),
            "size": self.size,
            "sha256": self.sha256,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "owner": self.owner,
            "atime_ns": self.atime_ns,
            "mtime_ns": self.mtime_ns,
            "ctime_ns": self.ctime_ns,
            "quarantined_at": utc_iso(self.quarantined_at),
            "verdict": self.verdict,
            "detections": [dict(d) for d in self.detections],
            "explanation": list(self.explanation),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> VaultItem:
        try:
            return cls(
                id=str(meta["id"]),
                original_path=decode_path(meta["original_path_b64"]),
                size=int(meta["size"]),
                sha256=str(meta["sha256"]),
                mode=int(meta["mode"]),
                uid=int(meta["uid"]),
                gid=int(meta["gid"]),
                owner=meta.get("owner"),
                atime_ns=int(meta["atime_ns"]),
                mtime_ns=int(meta["mtime_ns"]),
                ctime_ns=int(meta["ctime_ns"]),
                quarantined_at=parse_utc(meta["quarantined_at"]),
                verdict=str(meta.get("verdict", "malicious")),
                detections=tuple(meta.get("detections", ())),
                explanation=tuple(str(x) for x in meta.get("explanation", ())),
                extra=dict(meta.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultIntegrityError(f"vault item metadata is incomplete: {exc}") from exc

    def to_public_dict(self) -> dict[str, Any]:
        """What ``aegis quarantine list --json`` prints for the item."""
        return {
            "id": self.id,
            "path": self.display_path,
            "path_b64": encode_path(self.original_path),
            "sha256": self.sha256,
            "size": self.size,
            "mode": f"{stat.S_IMODE(self.mode):04o}",
            "owner": self.owner if self.owner is not None else self.uid,
            "verdict": self.verdict,
            "detections": [dict(d) for d in self.detections],
            "explanation": list(self.explanation),
            "quarantined_at": utc_iso(self.quarantined_at),
            "modified_at": utc_iso(datetime.fromtimestamp(self.mtime_ns / 1e9, UTC)),
        }


@dataclass(frozen=True)
class UnreadableItem:
    """A vault item file that could not be read (truncated, damaged, another key)."""

    id: str
    reason: str


@dataclass(frozen=True)
class VaultListing:
    """What ``quarantine list`` shows: readable items, oldest first, and the unreadable ones."""

    items: list[VaultItem]
    unreadable: list[UnreadableItem]
