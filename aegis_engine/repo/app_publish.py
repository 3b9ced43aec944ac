"""``aegis-repo release REPO --keys KEYS --app BUNDLE_DIR``: publish a build of the program.

The bundle folder (``dist/aegis/``) becomes one deterministic tar
(:func:`~aegis_engine.updates.app_bundle.write_bundle_tar`), stored sealed in frames and
content-addressed as ``targets/app/<sha256>.tar``; for the previous ``keep`` published
versions of the same platform, a sealed delta pack (file by file,
:mod:`~aegis_engine.updates.app_delta`; kept only when smaller than the full tar); then the
platform's app index (one TUF target, ``app-<platform>.json``, the shape of the content
index) and new targets, snapshot and timestamp metadata. The content index and any other
platform's app index stay as they are. Every step streams through files in a work folder:
no build is held in memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..updates.app_bundle import MAX_BUNDLE, unpack_bundle, write_bundle_tar
from ..updates.app_delta import make_pack
from ..updates.app_index import (
    DELTAS,
    PACK,
    AppIndex,
    app_target,
    check_version,
    current_platform,
    version_key,
)
from ..updates.index import DeltaEntry, FileEntry
from ..updates.seal import seal_file, unseal_file
from ..updates.session import file_sha256
from .tufrepo import RepoError, TufRepo, now

__all__ = ["AppReleaseReport", "bundle_version", "release_app"]

SEAL_LEVEL = 12
"""zstd level of the sealed full tar: within ~1 % of level 19 on a bundle, minutes faster."""
SMALL_PACK = 16 * 1024 * 1024
"""Delta packs up to this size are sealed at level 19 (seconds), larger ones at SEAL_LEVEL."""


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


def _sealed(plain: Path, dest: Path, level: int) -> FileEntry:
    """Seal the file ``plain`` as ``dest`` (content-addressed: kept when already there)."""
    if not dest.is_file():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        with open(plain, "rb") as src, open(tmp, "wb") as dst:
            seal_file(src, dst, level)
        tmp.chmod(0o644)
        tmp.replace(dest)
    return FileEntry(
        file_sha256(plain), plain.stat().st_size, dest.stat().st_size, file_sha256(dest)
    )


def _unpacked(repo: Path, old: AppIndex, work: Path) -> Path:
    """The folder of an earlier published build, from its sealed tar."""
    tar = work / f"{old.sha256}.tar"
    with open(repo / "targets" / old.blob_path, "rb") as src, open(tar, "wb") as dst:
        unseal_file(src, dst, max_size=MAX_BUNDLE)
    folder = work / old.sha256
    unpack_bundle(tar, folder)
    tar.unlink()
    return folder


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
    repo.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".release-app-", dir=repo))
    try:
        tar = work / "bundle.tar"
        with open(tar, "wb") as fh:
            write_bundle_tar(bundle, fh)
        sha = file_sha256(tar)
        full = _sealed(tar, repo / "targets" / "app" / f"{sha}.tar", SEAL_LEVEL)
        deltas: dict[str, DeltaEntry] = {}
        for old in reversed(previous[-keep:] if keep > 0 else []):
            if old.sha256 == sha:
                continue
            pack = work / f"{old.sha256}.pack"
            with open(pack, "wb") as fh:
                make_pack(_unpacked(repo, old, work), bundle, fh)
            probe = DeltaEntry(old.sha256, sha, PACK, 0, "")
            level = 19 if pack.stat().st_size <= SMALL_PACK else SEAL_LEVEL
            sealed = _sealed(pack, repo / "targets" / probe.path_in(DELTAS), level)
            if sealed.blob_length >= full.blob_length:
                (repo / "targets" / probe.path_in(DELTAS)).unlink()
                continue
            deltas[old.version] = DeltaEntry(
                old.sha256, sha, PACK, sealed.blob_length, sealed.blob_sha256
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    index = AppIndex(plat, version, now(), full, tuple(deltas.values()))
    tuf.release_index(app_target(plat), index.to_json(), _records(repo, plat) / f"{version}.json")
    return AppReleaseReport(
        plat,
        version,
        full.length,
        full.blob_length,
        {v: d.length for v, d in deltas.items()},
    )
