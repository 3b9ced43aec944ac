"""``aegis-repo release``: publish a content folder as the next version.

Every content file becomes a sealed, content-addressed blob; for each file that changed since
one of the previous ``keep`` versions, a delta from that version (bsdiff4 or zstd patch-from,
whichever is smaller, kept only when smaller than the blob); then the index (the release's one
TUF target) and new targets, snapshot and timestamp metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from ..updates.delta import best_delta
from ..updates.index import (
    INDEX_TARGET,
    ContentIndex,
    DeltaEntry,
    FileEntry,
    content_files,
    sha256_hex,
)
from ..updates.seal import seal, unseal
from .tufrepo import RepoError, TufRepo, now

__all__ = ["ReleaseReport", "record_base", "release"]


@dataclass(frozen=True)
class ReleaseReport:
    version: int
    files: int
    new_blobs: int
    deltas: int
    index_bytes: int


def _releases(repo: Path) -> dict[int, ContentIndex]:
    out = {}
    folder = repo / "releases"
    if folder.is_dir():
        for p in folder.glob("*.json"):
            if p.stem.isdigit():
                out[int(p.stem)] = ContentIndex.from_json(p.read_bytes())
    return out


def _read_content(content: Path) -> dict[str, bytes]:
    files = {rel: p.read_bytes() for rel, p in content_files(content)}
    if not files:
        raise RepoError(f"{content} holds no content (rules/, hashes/, model/ ...)")
    return files


def _store_blobs(repo: Path, files: dict[str, bytes]) -> tuple[dict[str, FileEntry], int]:
    entries: dict[str, FileEntry] = {}
    new = 0
    for rel, data in files.items():
        sha = sha256_hex(data)
        path = repo / "targets" / "blobs" / sha
        if path.is_file():
            blob = path.read_bytes()
        else:
            blob = seal(data, level=19)
            atomic_write(path, blob, mode=0o644)
            new += 1
        entries[rel] = FileEntry(sha, len(data), len(blob), sha256_hex(blob))
    return entries, new


def record_base(repo: Path, content: Path, version: int = 0) -> None:
    """Record ``content`` (e.g. the shipped ``resources/``) as ``version`` without publishing
    it, so that the next releases carry deltas from what installed clients already have."""
    files = _read_content(content)
    entries, _ = _store_blobs(repo, files)
    index = ContentIndex(version, now(), entries)
    atomic_write(repo / "releases" / f"{version}.json", index.to_json(), mode=0o644)


def release(
    repo: Path,
    keys: Path,
    content: Path,
    *,
    keep: int = 3,
    expiry_days: dict[str, float] | None = None,
) -> ReleaseReport:
    tuf = TufRepo(repo, keys, expiry_days)
    tuf.signers("targets")  # fail before writing anything when the keys are missing
    previous = _releases(repo)
    version = max(previous) + 1 if previous else 1
    files = _read_content(content)
    entries, new_blobs = _store_blobs(repo, files)
    deltas: list[DeltaEntry] = []
    seen: set[tuple[str, str]] = set()
    for old_version in sorted(previous, reverse=True)[:keep]:
        old = previous[old_version]
        for rel, entry in entries.items():
            base = old.files.get(rel)
            if base is None or base.sha256 == entry.sha256:
                continue
            if (base.sha256, entry.sha256) in seen:
                continue
            seen.add((base.sha256, entry.sha256))
            base_plain = unseal((repo / "targets" / "blobs" / base.sha256).read_bytes())
            best = best_delta(base_plain, files[rel])
            if best is None:
                continue
            algo, raw = best
            sealed = seal(raw, level=19)
            if len(sealed) >= entry.blob_length:
                continue
            d = DeltaEntry(base.sha256, entry.sha256, algo, len(sealed), sha256_hex(sealed))
            atomic_write(repo / "targets" / d.path, sealed, mode=0o644)
            deltas.append(d)
    index = ContentIndex(version, now(), entries, tuple(deltas))
    data = index.to_json()
    tuf.release_index(INDEX_TARGET, data, repo / "releases" / f"{version}.json")  # app's stay
    return ReleaseReport(version, len(entries), new_blobs, len(deltas), len(data))


def describe(report: ReleaseReport) -> str:
    return json.dumps(report.__dict__)
