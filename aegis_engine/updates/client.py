"""The content update client: check, download (deltas when smaller), verify, test-load, switch.

The TUF session (:mod:`.session`, shared with the program's own updates) verifies the
metadata and hands over the signed content index, which names the SHA-256 of every blob and
delta. Nothing is switched until every file of the new version matches its signed hash and
the whole content set test-loads; then one atomic switch, the previous version kept. On any
failure the content in use stays in use and the result says why.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..content import bundled_resources
from ..errors import ContentError, UpdateFailed, UpdateRefused
from ..paths import AegisPaths
from .delta import apply_delta
from .fetcher import OFFLINE_BASE, DirFetcher, RangeFetcher
from .index import INDEX_TARGET, ContentIndex, DeltaEntry, FileEntry, sha256_hex
from .seal import unseal
from .session import TufSession, failure
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
        self.session = TufSession(paths, fetcher, base_url=base_url, root=root)
        self._progress = progress or (lambda _m: None)

    @classmethod
    def from_dir(cls, paths: AegisPaths, source: Path, root: bytes) -> UpdateClient:
        return cls(paths, DirFetcher(source), base_url=OFFLINE_BASE, root=root)

    # -- the check -----------------------------------------------------------------------------

    def run(self) -> UpdateResult:
        current = self._current_version()
        try:
            self.store.recover()
            result = self._run(current)
        except Exception as exc:
            outcome = failure(exc)
            if outcome is None:
                raise
            result = self._result(outcome[0], current, outcome[1])
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
        self._progress("checking for new content")
        info = self.session.target_info(INDEX_TARGET, MAX_INDEX, "the content index")
        if info is None:
            return self._result("current", current, "the repository has published no content yet")
        inst = self.store.current()
        if inst is not None and self.store.index_sha256(inst) == info.hashes.get("sha256", ""):
            return self._result("current", current, f"version {current} is the latest")
        raw = self.session.read_target(INDEX_TARGET, info, "the content index")
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
            sealed = self.session.verified(d.path, d.length, d.sha256, f"the delta for {rel}")
            try:
                return apply_delta(have[d.base](), unseal(sealed), d.algo, entry.length)
            except ContentError as exc:
                raise UpdateRefused(f"the delta for {rel} cannot be applied: {exc}") from exc
        self._progress(f"{rel}: {entry.blob_length} bytes")
        partial = self.store.root / "partial" / entry.blob_sha256
        self.session.download_to(
            f"blobs/{entry.sha256}", entry.blob_length, entry.blob_sha256, partial, rel
        )
        sealed = partial.read_bytes()
        partial.unlink()
        try:
            return unseal(sealed, max_size=entry.length)
        except ContentError as exc:
            raise UpdateRefused(f"{rel}: {exc}") from exc

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
