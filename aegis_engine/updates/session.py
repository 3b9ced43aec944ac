"""What content updates and the program's own updates share: one TUF session on one fetcher.

python-tuf's ``ngclient.Updater`` (bootstrapped with the shipped root, or ``--root``) verifies
the metadata: signatures and thresholds, expiry (freeze), version numbers (rollback),
snapshot/targets consistency (mix-and-match), root rotation, lengths (endless data). It then
hands over the signed length and hash of an index target (content: ``index.json``; the
program: ``app-<platform>.json``), and the index names the SHA-256 of every blob and delta.

:meth:`TufSession.download_to` is the one resumable download: a target is appended to a
partial file with an HTTP ``Range`` request (through :mod:`aegis_engine.net`, the fetcher),
then hashed from disk against its signed SHA-256; nothing is ever held whole in memory.
:func:`failure` maps any exception of a check to its result (``refused`` or ``failed``) and
one line saying why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]  # re-exported, public API
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater

from ..errors import AegisError, UpdateRefused
from ..paths import AegisPaths
from .fetcher import RangeFetcher

__all__ = ["TufSession", "failure", "file_sha256"]

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    name = type(exc).__name__
    return text if name in text else f"{name}: {text}"


def failure(exc: BaseException) -> tuple[str, str] | None:
    """(``refused`` | ``failed``, why) for an exception of an update check; None for one that
    is not an update problem (a bug: let it propagate)."""
    refused = UpdateRefused | tuf_exc.RepositoryError | tuf_exc.DownloadLengthMismatchError
    if isinstance(exc, refused):
        return "refused", why(exc)
    if isinstance(exc, tuf_exc.DownloadError):
        return "failed", why(exc)
    if isinstance(exc, AegisError):
        return "failed", str(exc)
    if isinstance(exc, MemoryError):
        return "failed", "not enough memory to apply the update"
    if isinstance(exc, OSError):
        return "failed", f"cannot write the update: {exc}"
    return None


class TufSession:
    """Verified metadata and targets of one update repository (a server or a folder)."""

    def __init__(
        self, paths: AegisPaths, fetcher: RangeFetcher, *, base_url: str, root: bytes
    ) -> None:
        self.paths = paths
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/") + "/"
        self.root = root
        self._updater: Updater | None = None

    def metadata_dir(self) -> Path:
        """One trusted metadata folder per root, shared by content and program updates."""
        tag = hashlib.sha256(self.root).hexdigest()[:16]
        return self.paths.ensure(self.paths.data_dir / "update-metadata" / tag)

    def refresh(self) -> None:
        self._updater = Updater(
            metadata_dir=str(self.metadata_dir()),
            metadata_base_url=self.base_url + "metadata/",
            target_base_url=self.base_url + "targets/",
            fetcher=self.fetcher,
            config=UpdaterConfig(app_user_agent="aegis"),
            bootstrap=self.root,
        )
        self._updater.refresh()

    def target_info(self, name: str, max_length: int, what: str) -> TargetFile | None:
        """The signed length and hashes of target ``name``; None when it is not published."""
        if self._updater is None:
            self.refresh()
        assert self._updater is not None
        info = self._updater.get_targetinfo(name)
        if info is not None and info.length > max_length:
            raise UpdateRefused(f"{what} is too large ({info.length} bytes)")
        return info

    def read_target(self, name: str, info: TargetFile, what: str) -> bytes:
        """The bytes of a (small) signed target, checked against its signed length and hash."""
        digest = info.hashes.get("sha256", "")
        url = self.base_url + "targets/" + f"{digest}.{name}"
        _, chunks = self.fetcher.open_range(url, 0, info.length)
        raw = b"".join(chunks)
        try:
            info.verify_length_and_hashes(raw)
        except tuf_exc.LengthOrHashMismatchError as exc:
            raise UpdateRefused(f"{what} does not match its signed hash: {exc}") from exc
        return raw

    def download_to(self, path: str, length: int, sha256: str, partial: Path, what: str) -> Path:
        """Target ``path`` in the file ``partial``, continuing what an interrupted download
        left there (an HTTP Range request), then checked against the signed length and
        SHA-256. A file that does not match is deleted and :class:`UpdateRefused` raised."""
        partial.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        have = partial.stat().st_size if partial.is_file() else 0
        if have > length:
            partial.unlink()
            have = 0
        url = self.base_url + "targets/" + path
        offset, chunks = self.fetcher.open_range(url, have, length - have)
        with open(partial, "r+b" if have else "wb") as fh:
            fh.seek(offset if offset <= have else 0)
            fh.truncate()
            written = fh.tell()
            for chunk in chunks:
                written += len(chunk)
                if written > length:
                    break
                fh.write(chunk)
        if written != length or file_sha256(partial) != sha256:
            partial.unlink(missing_ok=True)
            raise UpdateRefused(f"{what} does not match its signed hash (tampered or damaged)")
        return partial

    def verified(self, path: str, length: int, sha256: str, what: str) -> bytes:
        """A (small) target's bytes, checked against its signed length and SHA-256."""
        _, chunks = self.fetcher.open_range(self.base_url + "targets/" + path, 0, length)
        data = b"".join(chunks)
        if len(data) != length or hashlib.sha256(data).hexdigest() != sha256:
            raise UpdateRefused(f"{what} does not match its signed hash (tampered or damaged)")
        return data
