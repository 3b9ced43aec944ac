"""The update client: check, download (deltas when smaller), verify, test-load, switch.

python-tuf's ``ngclient.Updater`` (bootstrapped with the shipped root, or ``--root``) verifies
the metadata: signatures and thresholds, expiry (freeze), version numbers (rollback),
snapshot/targets consistency (mix-and-match), root rotation, lengths (endless data). It then
hands us the signed length and hash of the index, which names the SHA-256 of every blob and
delta. Nothing is switched until every file of the new version matches its signed hash and
the whole content set test-loads; then one atomic switch, the previous version kept. On any
failure the content in use stays in use and the result says why.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater

from ..content import bundled_resources
from ..errors import (
    AegisError,
    ConsentRequired,
    ContentError,
    NetworkError,
    UpdateError,
    UpdateFailed,
    UpdateRefused,
)
from ..paths import AegisPaths
from .delta import apply_delta
from .fetcher import OFFLINE_BASE, DirFetcher, RangeFetcher
from .index import INDEX_TARGET, ContentIndex, DeltaEntry, FileEntry, sha256_hex
from .seal import unseal
from .store import ContentStore
from .testload import test_load

__all__ = ["UpdateClient", "UpdateResult", "shipped_root"]

MAX_INDEX = 4 * 1024 * 1024
Progress = Callable[[str], None]


def shipped_root() -> bytes | None:
    """The trusted root metadata that ships with Aegis (``resources/update/root.json``)."""
    path = bundled_resources() / "update" / "root.json"
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass
class UpdateResult:
    result: str
    """``updated`` | ``current`` | ``refused`` | ``failed``."""
    version: int
    previous_version: int
    bytes_downloaded: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.result in ("updated", "current")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class UpdateClient:
    """One update check against a server (``server``) or a folder (``source_dir``)."""

    def __init__(
        self,
        paths: AegisPaths,
        fetcher: RangeFetcher,
        *,
        base_url: str,
        root: bytes,
        progress: Progress | None = None,
    ) -> None:
        self.paths = paths
        self.store = ContentStore(paths)
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/") + "/"
        self.root = root
        self._progress = progress or (lambda _m: None)

    @classmethod
    def from_dir(cls, paths: AegisPaths, source: Path, root: bytes) -> UpdateClient:
        return cls(paths, DirFetcher(source), base_url=OFFLINE_BASE, root=root)

    # -- the check -----------------------------------------------------------------------------

    def _metadata_dir(self) -> Path:
        tag = hashlib.sha256(self.root).hexdigest()[:16]
        return self.paths.ensure(self.paths.data_dir / "update-metadata" / tag)

    def run(self) -> UpdateResult:
        current = self._current_version()
        try:
            self.store.recover()
            result = self._run(current)
        except ConsentRequired as exc:
            result = self._result("failed", current, str(exc))
        except (UpdateRefused, tuf_exc.RepositoryError, tuf_exc.DownloadLengthMismatchError) as e:
            result = self._result("refused", current, _why(e))
        except tuf_exc.DownloadError as exc:
            result = self._result("failed", current, _why(exc))
        except (UpdateError, NetworkError, ContentError) as exc:
            result = self._result("failed", current, str(exc))
        except OSError as exc:
            result = self._result("failed", current, f"cannot write the update: {exc}")
        except AegisError as exc:
            result = self._result("failed", current, str(exc))
        self.store.record_check(result.result, result.reason, result.version)
        return result

    def _current_version(self) -> int:
        try:
            inst = self.store.current()
        except ContentError:
            return 0
        return inst.version if inst else 0

    def _result(
        self, result: str, current: int, reason: str, version: int | None = None
    ) -> UpdateResult:
        return UpdateResult(
            result,
            current if version is None else version,
            current,
            self.fetcher.bytes_downloaded,
            reason,
        )

    def _run(self, current: int) -> UpdateResult:
        updater = Updater(
            metadata_dir=str(self._metadata_dir()),
            metadata_base_url=self.base_url + "metadata/",
            target_base_url=self.base_url + "targets/",
            fetcher=self.fetcher,
            config=UpdaterConfig(app_user_agent="aegis"),
            bootstrap=self.root,
        )
        self._progress("checking for new content")
        updater.refresh()
        info = updater.get_targetinfo(INDEX_TARGET)
        if info is None:
            return self._result("current", current, "the repository has published no content yet")
        if info.length > MAX_INDEX:
            raise UpdateRefused(f"the content index is too large ({info.length} bytes)")
        digest = info.hashes.get("sha256", "")
        inst = self.store.current()
        if inst is not None and self.store.index_sha256(inst) == digest:
            return self._result("current", current, f"version {current} is the latest")
        raw = self._download(f"{digest}.{INDEX_TARGET}", info.length)
        try:
            info.verify_length_and_hashes(raw)
        except tuf_exc.LengthOrHashMismatchError as exc:
            raise UpdateRefused(f"the content index does not match its signed hash: {exc}") from exc
        index = ContentIndex.from_json(raw)
        if index.version < current:
            raise UpdateRefused(
                f"the repository offers version {index.version}, older than the installed "
                f"{current} (rollback refused)"
            )
        if index.version == current and (
            inst is None or self.store.index_of(inst).digest == index.digest
        ):
            return self._result("current", current, f"version {current} is the latest")
        files = self._fetch_files(index)
        self._progress("test-loading the new content")
        self._test_load(files)
        self.store.install(index, files)
        return self._result(
            "updated",
            current,
            f"updated from version {current} to {index.version}",
            version=index.version,
        )

    # -- files ---------------------------------------------------------------------------------

    def _download(self, target_path: str, length: int, resume: Path | None = None) -> bytes:
        """A target's bytes, at most ``length``; with ``resume``, continued from a partial."""
        url = self.base_url + "targets/" + target_path
        have = b""
        if resume is not None and resume.is_file():
            have = resume.read_bytes()[:length]
        offset, chunks = self.fetcher.open_range(url, len(have), length - len(have))
        if offset != len(have):
            have = b""
        if resume is None:
            return have + b"".join(chunks)
        resume.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(resume, "wb") as fh:
            fh.write(have)
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
        data = resume.read_bytes()
        resume.unlink()
        return data

    def _fetch_files(self, index: ContentIndex) -> dict[str, bytes]:
        have = self.store.known_files()
        out: dict[str, bytes] = {}
        for rel, entry in index.files.items():
            if entry.sha256 in have:
                data = have[entry.sha256]()
            else:
                data = self._fetch_one(rel, entry, index.deltas_to(entry.sha256), have)
            if sha256_hex(data) != entry.sha256:
                raise UpdateRefused(f"{rel} does not match its signed hash")
            out[rel] = data
        return out

    def _fetch_one(
        self,
        rel: str,
        entry: FileEntry,
        deltas: list[DeltaEntry],
        have: dict[str, Callable[[], bytes]],
    ) -> bytes:
        usable = sorted((d for d in deltas if d.base in have), key=lambda d: d.length)
        if usable and usable[0].length < entry.blob_length:
            d = usable[0]
            self._progress(f"{rel}: {d.algo} delta, {d.length} bytes")
            sealed = self._verified(d.path, d.length, d.sha256, f"the delta for {rel}")
            try:
                return apply_delta(have[d.base](), unseal(sealed), d.algo, entry.length)
            except ContentError as exc:
                raise UpdateRefused(f"the delta for {rel} cannot be applied: {exc}") from exc
        self._progress(f"{rel}: {entry.blob_length} bytes")
        partial = self.store.root / "partial" / entry.blob_sha256
        sealed = self._verified(
            f"blobs/{entry.sha256}", entry.blob_length, entry.blob_sha256, rel, partial
        )
        try:
            return unseal(sealed, max_size=entry.length)
        except ContentError as exc:
            raise UpdateRefused(f"{rel}: {exc}") from exc

    def _verified(
        self, path: str, length: int, sha: str, what: str, resume: Path | None = None
    ) -> bytes:
        data = self._download(path, length, resume)
        if len(data) != length or sha256_hex(data) != sha:
            raise UpdateRefused(f"{what} does not match its signed hash (tampered or damaged)")
        return data

    def _test_load(self, files: dict[str, bytes]) -> None:
        tmp = Path(
            tempfile.mkdtemp(prefix=".testload.", dir=self.paths.ensure(self.paths.cache_dir))
        )
        try:
            for rel, data in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            test_load(tmp)
        except ContentError as exc:
            raise UpdateFailed(str(exc)) from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    name = type(exc).__name__
    return text if name in text else f"{name}: {text}"


def rollback(paths: AegisPaths) -> UpdateResult:
    """Switch back to the previous content version (or the bundled one)."""
    store = ContentStore(paths)
    before, after = store.rollback()
    if before is None:
        return UpdateResult("failed", 0, 0, 0, "no update is installed; nothing to roll back")
    to = after.version if after else 0
    reason = f"rolled back from version {before.version} to {to}"
    store.record_check("updated", reason, to)
    return UpdateResult("updated", to, before.version, 0, reason)
