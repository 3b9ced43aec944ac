"""A static TUF repository on disk: keys, signing, and writing the four top-level roles.

Layout (what a web server or CDN serves)::

    REPO/metadata/<N>.root.json, root.json, <N>.targets.json, <N>.snapshot.json, timestamp.json
    REPO/targets/<sha256>.index.json          the one TUF target per release (see index.py)
    REPO/targets/blobs/<sha256>               sealed content files, content-addressed
    REPO/targets/deltas/<from>-<to>.<algo>    sealed deltas
    REPO/releases/<N>.json                    the publisher's record of each release

Keys live in a separate KEYS folder (``<role>.pem``, more root keys as ``root.2.pem`` ...),
PEM/PKCS8, mode 0600. Root and targets keys can be kept offline; snapshot and timestamp are
the online keys (``aegis-repo timestamp`` re-signs the timestamp before it expires).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import (  # type: ignore[attr-defined]  # re-exported, public API
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from ..atomic import atomic_write
from ..errors import AegisError

__all__ = ["EXPIRY_DAYS", "ROLES", "RepoError", "TufRepo"]

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}


class RepoError(AegisError):
    """The publishing tool cannot do what was asked (missing keys, broken repository)."""


def now() -> str:
    """The time a release is made, as an index records it."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _expiry(role: str, days: dict[str, float] | None = None) -> datetime:
    d = (days or {}).get(role, EXPIRY_DAYS[role])
    return (datetime.now(UTC) + timedelta(days=d)).replace(microsecond=0)


def _write_key(path: Path, signer: CryptoSigner) -> None:
    if path.exists():
        raise RepoError(f"{path} exists; not overwritten")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer.private_bytes)


def _load_signers(keys: Path, role: str) -> list[CryptoSigner]:
    out = []
    for path in sorted(keys.glob(f"{role}*.pem")):
        stem = path.name[: -len(".pem")]
        if stem != role and not (stem.startswith(role + ".") and stem[len(role) + 1 :].isdigit()):
            continue
        try:
            priv = load_pem_private_key(path.read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            raise RepoError(f"cannot load the key {path}: {exc}") from exc
        out.append(CryptoSigner(priv))
    return out


class TufRepo:
    """Reads and writes the metadata of a repository folder."""

    def __init__(self, repo: Path, keys: Path, expiry_days: dict[str, float] | None = None):
        self.repo = repo
        self.keys = keys
        self.meta_dir = repo / "metadata"
        self.targets_dir = repo / "targets"
        self.expiry_days = expiry_days
        self._ser = JSONSerializer(compact=True)

    # -- creating ------------------------------------------------------------------------------

    def init(self, *, root_keys: int = 1, root_threshold: int = 1) -> None:
        if (self.meta_dir / "1.root.json").exists():
            raise RepoError(f"{self.repo} already holds a repository")
        self.keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        root = Root(expires=_expiry("root", self.expiry_days), consistent_snapshot=True)
        for role in ROLES:
            signers = _load_signers(self.keys, role)
            wanted = root_keys if role == "root" else 1
            while len(signers) < wanted:
                signer = CryptoSigner.generate_ed25519()
                name = role if not signers else f"{role}.{len(signers) + 1}"
                _write_key(self.keys / f"{name}.pem", signer)
                signers.append(signer)
            for s in signers[:wanted]:
                root.add_key(s.public_key, role)
        root.roles["root"].threshold = root_threshold
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.write_root(Metadata(root))
        targets = Metadata(Targets(expires=_expiry("targets", self.expiry_days)))
        self.publish(targets)

    # -- loading -------------------------------------------------------------------------------

    def load(self, role: str) -> Metadata[Any]:
        path = self.meta_dir / f"{role}.json"
        if role != "timestamp":
            versions = sorted(
                int(p.name.split(".")[0])
                for p in self.meta_dir.glob(f"*.{role}.json")
                if p.name.split(".")[0].isdigit()
            )
            if versions:
                path = self.meta_dir / f"{versions[-1]}.{role}.json"
        try:
            return Metadata.from_file(str(path))
        except Exception as exc:  # tuf raises several types for a damaged file
            raise RepoError(f"cannot read {path}: {exc}") from exc

    def signers(self, role: str, root: Root | None = None) -> list[CryptoSigner]:
        root = root or self.load("root").signed
        ids = set(root.roles[role].keyids)
        found = [s for s in _load_signers(self.keys, role) if s.public_key.keyid in ids]
        if not found:
            raise RepoError(f"no {role} key in {self.keys} matches the repository's root")
        return found

    # -- writing -------------------------------------------------------------------------------

    def _write(self, md: Metadata[Any], name: str) -> None:
        atomic_write(self.meta_dir / name, md.to_bytes(self._ser), mode=0o644)

    def write_root(self, md: Metadata[Root], signers: list[CryptoSigner] | None = None) -> None:
        md.signatures.clear()
        for s in signers if signers is not None else self.signers("root", md.signed):
            md.sign(s, append=True)
        self._write(md, f"{md.signed.version}.root.json")
        self._write(md, "root.json")

    def publish(self, targets: Metadata[Targets], *, bump: bool = True) -> None:
        """Sign ``targets`` and write new snapshot and timestamp versions naming it."""
        root = self.load("root").signed
        if bump and (self.meta_dir / "1.targets.json").exists():
            targets.signed.version += 1
        targets.signed.expires = _expiry("targets", self.expiry_days)
        targets.signatures.clear()
        for s in self.signers("targets", root):
            targets.sign(s, append=True)
        self._write(targets, f"{targets.signed.version}.targets.json")
        try:
            snap: Metadata[Snapshot] = self.load("snapshot")
            snap.signed.version += 1
        except RepoError:
            snap = Metadata(Snapshot())
        snap.signed.meta = {"targets.json": MetaFile(version=targets.signed.version)}
        self._sign_write(snap, "snapshot", root, f"{snap.signed.version}.snapshot.json")
        self.timestamp(snap.signed.version, root)

    def timestamp(self, snapshot_version: int | None = None, root: Root | None = None) -> None:
        """Re-sign the timestamp (a new version and expiry), e.g. from a cron job."""
        root = root or self.load("root").signed
        try:
            ts: Metadata[Timestamp] = self.load("timestamp")
            ts.signed.version += 1
        except RepoError:
            ts = Metadata(Timestamp())
        if snapshot_version is not None:
            ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        self._sign_write(ts, "timestamp", root, "timestamp.json")

    def _sign_write(self, md: Metadata[Any], role: str, root: Root, name: str) -> None:
        md.signed.expires = _expiry(role, self.expiry_days)
        md.signatures.clear()
        for s in self.signers(role, root):
            md.sign(s, append=True)
        self._write(md, name)

    def set_target(self, name: str, data: bytes) -> TargetFile:
        """Publish ``data`` as the target ``name`` (consistent-snapshot file name)."""
        tf = TargetFile.from_data(name, data, ["sha256"])
        digest = tf.hashes["sha256"]
        path = self.targets_dir / f"{digest}.{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o644)
        return tf

    def release_index(self, name: str, data: bytes, record: Path) -> None:
        """Publish the index ``data`` as target ``name`` (the other targets stay), sign new
        targets, snapshot and timestamp metadata, and keep a copy as ``record``."""
        targets = self.load("targets")
        targets.signed.targets[name] = self.set_target(name, data)
        self.publish(targets)
        atomic_write(record, data, mode=0o644)

    def rotate(self, role: str) -> None:
        """Replace ``role``'s key by a new one: a new root signed by the old and new root keys
        (clients accept it only when it is signed by a threshold of both)."""
        md: Metadata[Root] = self.load("root")
        old_root_signers = self.signers("root", md.signed)
        old_ids = list(md.signed.roles[role].keyids)
        n = len(list(self.keys.glob(f"{role}*.pem"))) + 1
        new = CryptoSigner.generate_ed25519()
        _write_key(self.keys / f"{role}.{n}.pem", new)
        for keyid in old_ids:
            md.signed.revoke_key(keyid, role)
        md.signed.add_key(new.public_key, role)
        md.signed.version += 1
        md.signed.expires = _expiry("root", self.expiry_days)
        signers = old_root_signers + ([new] if role == "root" else [])
        self.write_root(md, signers)
        if role != "root":
            self.publish(self.load("targets"))
