"""``aegis-repo release REPO --keys KEYS --app BUNDLE_DIR``: publish a build of the program.

The bundle folder (``dist/aegis/``) becomes one deterministic tar
(:func:`~aegis_engine.updates.app_bundle.bundle_tar`), stored sealed and content-addressed as
``targets/app/<sha256>.tar``; for the previous ``keep`` published versions of the same
platform, a sealed delta (bsdiff4 or zstd patch-from, whichever is smaller; kept only when
smaller than the full tar); then the platform's app index (one TUF target,
``app-<platform>.json``) and new targets, snapshot and timestamp metadata. The content index
and any other platform's app index stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..atomic import atomic_write
from ..updates.app_bundle import bundle_tar
from ..updates.app_index import (
    AppDelta,
    AppIndex,
    app_target,
    check_version,
    current_platform,
    version_key,
)
from ..updates.delta import best_delta
from ..updates.index import sha256_hex
from ..updates.seal import seal, unseal
from .tufrepo import RepoError, TufRepo

__all__ = ["AppReleaseReport", "bundle_version", "release_app"]

SEAL_LEVEL = 12
"""zstd level of the sealed full tar: within ~1 % of level 19 on a bundle, minutes faster."""


@dataclass(frozen=True)
class AppReleaseReport:
    platform: str
    version: str
    tar_bytes: int
    full_bytes: int
    """The sealed full tar as served."""
    deltas: dict[str, int]
    """Bytes of each delta, by base version."""


def bundle_version(bundle: Path) -> str:
    """The version of the program in a bundle folder, from its ``aegis-<v>.dist-info``."""
    for p in sorted(bundle.glob("_internal/aegis-*.dist-info")) + sorted(
        bundle.glob("aegis-*.dist-info")
    ):
        m = re.fullmatch(r"aegis-(.+)\.dist-info", p.name)
        if m:
            return check_version(m.group(1))
    raise RepoError(f"cannot tell the version of {bundle}: give --app-version")


def _records(repo: Path, plat: str) -> Path:
    return repo / "releases" / f"app-{plat}"


def _published(repo: Path, plat: str) -> list[AppIndex]:
    folder = _records(repo, plat)
    found = (
        [AppIndex.from_json(p.read_bytes()) for p in folder.glob("*.json")]
        if folder.is_dir()
        else []
    )
    return sorted(found, key=lambda i: version_key(i.version))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def release_app(
    repo: Path,
    keys: Path,
    bundle: Path,
    *,
    version: str | None = None,
    platform: str | None = None,
    keep: int = 1,
    expiry_days: dict[str, float] | None = None,
) -> AppReleaseReport:
    tuf = TufRepo(repo, keys, expiry_days)
    tuf.signers("targets")  # fail before writing anything when the keys are missing
    if not bundle.is_dir():
        raise RepoError(f"{bundle} is not a bundle folder")
    plat = platform or current_platform()
    version = check_version(version or bundle_version(bundle))
    previous = _published(repo, plat)
    if previous and version_key(version) <= version_key(previous[-1].version):
        raise RepoError(f"version {version} is not newer than the published {previous[-1].version}")
    tar = bundle_tar(bundle)
    sha = sha256_hex(tar)
    blob_path = repo / "targets" / "app" / f"{sha}.tar"
    if blob_path.is_file():
        blob = blob_path.read_bytes()
    else:
        blob = seal(tar, level=SEAL_LEVEL)
        atomic_write(blob_path, blob, mode=0o644)
    deltas: list[AppDelta] = []
    for old in reversed(previous[-keep:] if keep > 0 else []):
        if old.sha256 == sha:
            continue
        base = unseal((repo / "targets" / old.blob_path).read_bytes(), max_size=old.length)
        best = best_delta(base, tar)
        del base
        if best is None:
            continue
        algo, raw = best
        sealed = seal(raw, level=19)
        if len(sealed) >= len(blob):
            continue
        d = AppDelta(old.sha256, old.version, algo, len(sealed), sha256_hex(sealed))
        atomic_write(repo / "targets" / d.path(sha), sealed, mode=0o644)
        deltas.append(d)
    index = AppIndex(
        plat, version, _now(), sha, len(tar), sha256_hex(blob), len(blob), tuple(deltas)
    )
    data = index.to_json()
    name = app_target(plat)
    targets = tuf.load("targets")
    targets.signed.targets[name] = tuf.set_target(name, data)
    tuf.publish(targets)
    atomic_write(_records(repo, plat) / f"{version}.json", data, mode=0o644)
    return AppReleaseReport(
        plat, version, len(tar), len(blob), {d.base_version: d.length for d in deltas}
    )
