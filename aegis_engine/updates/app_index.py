"""The app index: one signed TUF target per platform naming the latest build of the program.

``app-<platform>.json`` (e.g. ``app-linux-x86_64.json``) gives the version, the SHA-256 and
length of the bundle's tar (:mod:`.app_bundle`), of its sealed blob as served
(``app/<sha256>.tar``), and of the sealed deltas from earlier published builds
(``app/deltas/<from>-<to>.<algo>``, ``from`` being the SHA-256 of the earlier build's tar).
TUF verifies the index; the index then names the hash of every byte the client uses.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ContentError
from .index import DELTA_ALGOS

__all__ = ["AppDelta", "AppIndex", "app_target", "current_platform", "version_key"]

FORMAT = 1
_HEX = re.compile(r"^[0-9a-f]{64}$")
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
class AppDelta:
    base: str
    """SHA-256 of the earlier build's tar the delta applies to."""
    base_version: str
    algo: str
    length: int
    sha256: str
    """Of the sealed delta as served."""

    def path(self, target: str) -> str:
        return f"app/deltas/{self.base}-{target}.{self.algo}"


@dataclass(frozen=True)
class AppIndex:
    platform: str
    version: str
    created: str
    sha256: str
    """Of the bundle's tar."""
    length: int
    blob_sha256: str
    """Of the sealed tar as served."""
    blob_length: int
    deltas: tuple[AppDelta, ...] = field(default=())

    @property
    def blob_path(self) -> str:
        return f"app/{self.sha256}.tar"

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "platform": self.platform,
            "version": self.version,
            "created": self.created,
            "tar": [self.sha256, self.length, self.blob_sha256, self.blob_length],
            "deltas": [[d.base, d.base_version, d.algo, d.sha256, d.length] for d in self.deltas],
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AppIndex:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown app index format {doc.get('format')!r}")
            tar = doc["tar"]
            deltas = tuple(
                AppDelta(_hex(d[0]), check_version(str(d[1])), _algo(d[2]), int(d[4]), _hex(d[3]))
                for d in doc.get("deltas", [])
            )
            return cls(
                str(doc["platform"]),
                check_version(str(doc["version"])),
                str(doc.get("created", "")),
                _hex(tar[0]),
                int(tar[1]),
                _hex(tar[2]),
                int(tar[3]),
                deltas,
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ContentError(f"the app index is not valid: {exc}") from exc


def _hex(value: object) -> str:
    text = str(value)
    if not _HEX.match(text):
        raise ValueError(f"not a SHA-256: {text!r}")
    return text


def _algo(value: object) -> str:
    if value not in DELTA_ALGOS:
        raise ValueError(f"unknown delta algorithm {value!r}")
    return str(value)
