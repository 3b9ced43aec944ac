"""The content index: which files make up one content version, and the deltas to reach them.

The index is the one TUF target of a release (``index.json``): TUF verifies its signature,
freshness, length and hash; the index then names the SHA-256 and length of every blob and
delta, which the client checks before using a byte. Blobs and deltas are content-addressed
(``blobs/<sha256>``, ``deltas/<from>-<to>.<algo>``), so they never change once published and
any static server or CDN can cache them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import ContentError

__all__ = [
    "CONTENT_TOPS",
    "INDEX_TARGET",
    "ContentIndex",
    "DeltaEntry",
    "FileEntry",
    "content_files",
    "sha256_hex",
]

INDEX_TARGET = "index.json"
FORMAT = 1
CONTENT_TOPS = ("rules", "hashes", "model", "behaviour_rules.toml")
"""What in a content folder is content (``resources/`` also holds icons and code)."""
DELTA_ALGOS = ("bsdiff4", "zstd")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe_relpath(rel: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(x in ("", ".", "..") for x in p.parts):
        raise ContentError(f"unsafe content path {rel!r}")
    if p.parts[0] not in CONTENT_TOPS:
        raise ContentError(f"{rel!r} is not content (rules/, hashes/, model/, behaviour rules)")
    return str(p)


def content_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(relative path, file) of every content file under ``root``, sorted."""
    found: list[tuple[str, Path]] = []
    for top in CONTENT_TOPS:
        base = root / top
        if base.is_file():
            found.append((top, base))
        elif base.is_dir():
            for p in base.rglob("*"):
                rel = p.relative_to(root).as_posix()
                if p.is_file() and not any(part.startswith((".", "__")) for part in p.parts[-1:]):
                    found.append((rel, p))
    yield from sorted(found)


@dataclass(frozen=True)
class FileEntry:
    """One file of a release: its plain SHA-256 and length, and its sealed blob as served
    (content: ``blobs/<sha256>``; the program: ``app/<sha256>.tar``)."""

    sha256: str
    length: int
    blob_length: int
    blob_sha256: str

    def to_row(self) -> list[object]:
        return [self.sha256, self.length, self.blob_sha256, self.blob_length]

    @classmethod
    def from_row(cls, v: list[Any]) -> FileEntry:
        return cls(_hex(v[0]), int(v[1]), int(v[3]), _hex(v[2]))


@dataclass(frozen=True)
class DeltaEntry:
    base: str
    """SHA-256 of the plain file the delta applies to."""
    target: str
    algo: str
    length: int
    sha256: str
    """Of the sealed delta as served."""

    @property
    def path(self) -> str:
        return self.path_in("deltas")

    def path_in(self, folder: str) -> str:
        return f"{folder}/{self.base}-{self.target}.{self.algo}"

    def to_row(self) -> list[object]:
        return [self.base, self.target, self.algo, self.sha256, self.length]

    @classmethod
    def from_row(cls, d: list[Any], algos: tuple[str, ...] = DELTA_ALGOS) -> DeltaEntry:
        return cls(_hex(d[0]), _hex(d[1]), _algo(d[2], algos), int(d[4]), _hex(d[3]))


@dataclass(frozen=True)
class ContentIndex:
    version: int
    created: str
    files: Mapping[str, FileEntry]
    deltas: tuple[DeltaEntry, ...] = field(default=())

    def deltas_to(self, target: str) -> list[DeltaEntry]:
        return [d for d in self.deltas if d.target == target]

    @property
    def digest(self) -> str:
        """Identifies the content set (independent of the version number)."""
        h = hashlib.sha256()
        for rel, f in sorted(self.files.items()):
            h.update(f"{rel}\0{f.sha256}\n".encode())
        return h.hexdigest()

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "created": self.created,
            "files": {rel: f.to_row() for rel, f in sorted(self.files.items())},
            "deltas": [d.to_row() for d in self.deltas],
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ContentIndex:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown index format {doc.get('format')!r}")
            version = int(doc["version"])
            files = {_safe_relpath(rel): FileEntry.from_row(v) for rel, v in doc["files"].items()}
            deltas = tuple(DeltaEntry.from_row(d) for d in doc.get("deltas", []))
            return cls(version, str(doc.get("created", "")), files, deltas)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ContentError(f"the content index is not valid: {exc}") from exc


def _hex(value: object) -> str:
    text = str(value)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a SHA-256: {text!r}")
    return text


def _algo(value: object, algos: tuple[str, ...] = DELTA_ALGOS) -> str:
    if value not in algos:
        raise ValueError(f"unknown delta algorithm {value!r}")
    return str(value)
