"""The app index: one signed TUF target per platform naming the latest build of the program.

``app-<platform>.json`` (e.g. ``app-linux-x86_64.json``) has the shape of the content index
(:mod:`.index`): the bundle's tar (:mod:`.app_bundle`) is one :class:`~.index.FileEntry`
(its SHA-256 and length, and its sealed blob as served, ``app/<sha256>.tar``), and each delta
from an earlier published build is a :class:`~.index.DeltaEntry` whose base is the SHA-256 of
that build's tar (``app/deltas/<from>-<to>.pack``, a per-file delta pack, :mod:`.app_delta`).
TUF verifies the index; the index then names the hash of every byte the client uses.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ContentError
from .index import DeltaEntry, FileEntry

__all__ = ["AppIndex", "app_target", "current_platform", "version_key"]

FORMAT = 2
PACK = "pack"
DELTAS = "app/deltas"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")


def current_platform() -> str:
    """``linux-x86_64``, ``windows-amd64``, ``darwin-arm64`` ..."""
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def app_target(plat: str) -> str:
    """The TUF target name of a platform's app index."""
    return f"app-{plat}.json"


def check_version(text: str) -> str:
    if not _VERSION.match(text) or text in (".", ".."):
        raise ContentError(f"not a usable version: {text!r}")
    return text


def version_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Orders ``0.9.0`` < ``0.10.0`` < ``0.10.1``: numbers compare as numbers."""
    parts = re.split(r"[.+_-]", text)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


@dataclass(frozen=True)
class AppIndex:
    platform: str
    version: str
    created: str
    bundle: FileEntry
    """The bundle's tar, and its sealed blob as served."""
    deltas: tuple[DeltaEntry, ...] = field(default=())
    """Delta packs from earlier builds' tars to this one."""

    @property
    def sha256(self) -> str:
        return self.bundle.sha256

    @property
    def length(self) -> int:
        return self.bundle.length

    @property
    def blob_length(self) -> int:
        return self.bundle.blob_length

    @property
    def blob_path(self) -> str:
        return f"app/{self.bundle.sha256}.tar"

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "platform": self.platform,
            "version": self.version,
            "created": self.created,
            "bundle": self.bundle.to_row(),
            "deltas": [d.to_row() for d in self.deltas],
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AppIndex:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown app index format {doc.get('format')!r}")
            bundle = FileEntry.from_row(doc["bundle"])
            deltas = tuple(DeltaEntry.from_row(d, (PACK,)) for d in doc.get("deltas", []))
            if any(d.target != bundle.sha256 for d in deltas):
                raise ValueError("a delta does not lead to this bundle")
            return cls(
                str(doc["platform"]),
                check_version(str(doc["version"])),
                str(doc.get("created", "")),
                bundle,
                deltas,
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ContentError(f"the app index is not valid: {exc}") from exc
