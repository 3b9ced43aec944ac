"""The program's own updates: check, download (a delta when it has the base), verify, stage.

The same TUF client as content updates (``tuf.ngclient.Updater`` bootstrapped with the
shipped root, the same metadata folder, the same fetcher on the network layer and the same
consent purpose) verifies the app index of this platform (:mod:`.app_index`). The client
then rebuilds the tar of the installed build (:func:`.app_bundle.bundle_tar`); when the index
offers a delta from exactly that tar it downloads the delta, else the full sealed tar. Every
byte is checked against the signed SHA-256 before use and the resulting tar against its own;
only then is it unpacked beside the installed build and marked staged
(:meth:`.app_layout.AppLayout.stage`): the launcher switches to it at the next start.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater

from ..errors import AegisError, ContentError, NetworkError, UpdateError, UpdateRefused
from ..paths import AegisPaths
from .app_bundle import MAX_BUNDLE, bundle_tar
from .app_index import AppDelta, AppIndex, app_target, current_platform, version_key
from .app_layout import AppLayout
from .client import Progress, _why
from .delta import MAX_DELTA_INPUT, apply_delta
from .fetcher import RangeFetcher
from .index import sha256_hex
from .seal import unseal

__all__ = ["AppUpdateClient", "AppUpdateResult"]

MAX_APP_INDEX = 1024 * 1024


@dataclass
class AppUpdateResult:
    result: str
    """``staged`` | ``current`` | ``refused`` | ``failed`` | ``unavailable``."""
    version: str | None
    """The version staged (or offered), else the installed one."""
    installed_version: str | None
    bytes_downloaded: int
    reason: str
    delta: bool = False
    """The update came as a delta from the installed build."""

    @property
    def ok(self) -> bool:
        return self.result in ("staged", "current")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class AppUpdateClient:
    """One check for a new build of the program installed in ``layout``."""

    def __init__(
        self,
        paths: AegisPaths,
        layout: AppLayout,
        fetcher: RangeFetcher,
        *,
        base_url: str,
        root: bytes,
        platform: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.paths = paths
        self.layout = layout
        self.fetcher = fetcher
        self.base_url = base_url.rstrip("/") + "/"
        self.root = root
        self.platform = platform or current_platform()
        self._progress = progress or (lambda _m: None)

    def _result(
        self, result: str, reason: str, version: str | None = None, *, delta: bool = False
    ) -> AppUpdateResult:
        installed = self.layout.installed_version
        return AppUpdateResult(
            result,
            version or installed,
            installed,
            self.fetcher.bytes_downloaded,
            reason,
            delta,
        )

    def run(self) -> AppUpdateResult:
        if not self.layout.is_installed():
            return self._result(
                "unavailable", f"{self.layout.lib} is not an installation of the program"
            )
        try:
            return self._run()
        except (UpdateRefused, tuf_exc.RepositoryError, tuf_exc.DownloadLengthMismatchError) as e:
            return self._result("refused", _why(e))
        except tuf_exc.DownloadError as exc:
            return self._result("failed", _why(exc))
        except (UpdateError, NetworkError, ContentError) as exc:
            return self._result("failed", str(exc))
        except MemoryError:
            return self._result("failed", "not enough memory to apply the update")
        except OSError as exc:
            return self._result("failed", f"cannot write the update: {exc}")
        except AegisError as exc:
            return self._result("failed", str(exc))

    def _metadata_dir(self) -> Path:
        # the same trusted metadata as content updates (one repository, one root)
        tag = hashlib.sha256(self.root).hexdigest()[:16]
        return self.paths.ensure(self.paths.data_dir / "update-metadata" / tag)

    def _run(self) -> AppUpdateResult:
        installed = self.layout.installed_version or ""
        updater = Updater(
            metadata_dir=str(self._metadata_dir()),
            metadata_base_url=self.base_url + "metadata/",
            target_base_url=self.base_url + "targets/",
            fetcher=self.fetcher,
            config=UpdaterConfig(app_user_agent="aegis"),
            bootstrap=self.root,
        )
        self._progress("checking for a new version of Aegis")
        updater.refresh()
        name = app_target(self.platform)
        info = updater.get_targetinfo(name)
        if info is None:
            return self._result("current", f"no build for {self.platform} is published")
        if info.length > MAX_APP_INDEX:
            raise UpdateRefused(f"the app index is too large ({info.length} bytes)")
        digest = info.hashes.get("sha256", "")
        raw = self._download(f"{digest}.{name}", info.length)
        try:
            info.verify_length_and_hashes(raw)
        except tuf_exc.LengthOrHashMismatchError as exc:
            raise UpdateRefused(f"the app index does not match its signed hash: {exc}") from exc
        index = AppIndex.from_json(raw)
        if index.platform != self.platform:
            raise UpdateRefused(f"the app index is for {index.platform}, not {self.platform}")
        if version_key(index.version) <= version_key(installed):
            return self._result("current", f"version {installed} is the latest")
        if index.version in self.layout.failed_versions():
            return self._result(
                "current", f"version {index.version} failed to start here before; not staged"
            )
        if self.layout.staged_version == index.version:
            return self._result(
                "staged", f"version {index.version} is staged; it starts next time", index.version
            )
        if index.length > MAX_BUNDLE:
            raise UpdateRefused(f"the bundle is too large ({index.length} bytes)")
        if not self.layout.writable():
            return self._result(
                "failed",
                f"{self.layout.lib} is not writable by this user: version {index.version} "
                "must be installed by whoever installed Aegis",
                index.version,
            )
        tar, used_delta = self._fetch_tar(index, installed)
        self._progress(f"unpacking version {index.version}")
        self.layout.stage(index.version, tar)
        how = "a delta" if used_delta else "the full bundle"
        return self._result(
            "staged",
            f"version {index.version} is ready ({how}); it starts the next time Aegis starts",
            index.version,
            delta=used_delta,
        )

    def _download(self, target_path: str, length: int) -> bytes:
        url = self.base_url + "targets/" + target_path
        _, chunks = self.fetcher.open_range(url, 0, length)
        return b"".join(chunks)

    def _verified(self, path: str, length: int, sha: str, what: str) -> bytes:
        data = self._download(path, length)
        if len(data) != length or sha256_hex(data) != sha:
            raise UpdateRefused(f"{what} does not match its signed hash (tampered or damaged)")
        return data

    def _fetch_tar(self, index: AppIndex, installed: str) -> tuple[bytes, bool]:
        delta = self._usable_delta(index, installed)
        if delta is not None:
            d, base = delta
            self._progress(f"version {index.version}: {d.algo} delta, {d.length} bytes")
            sealed = self._verified(
                d.path(index.sha256), d.length, d.sha256, f"the delta to {index.version}"
            )
            try:
                tar = apply_delta(base, unseal(sealed), d.algo, index.length)
            except ContentError as exc:
                raise UpdateRefused(f"the delta cannot be applied: {exc}") from exc
            del base
        else:
            self._progress(f"version {index.version}: {index.blob_length} bytes")
            sealed = self._verified(
                index.blob_path, index.blob_length, index.blob_sha256, f"version {index.version}"
            )
            try:
                tar = unseal(sealed, max_size=index.length)
            except ContentError as exc:
                raise UpdateRefused(f"version {index.version}: {exc}") from exc
        if len(tar) != index.length or sha256_hex(tar) != index.sha256:
            raise UpdateRefused(f"version {index.version} does not match its signed hash")
        return tar, delta is not None

    def _usable_delta(self, index: AppIndex, installed: str) -> tuple[AppDelta, bytes] | None:
        """A delta from the installed build, with that build's tar, when one is smaller."""
        candidates = [
            d for d in index.deltas if d.base_version == installed and d.length < index.blob_length
        ]
        if not candidates or index.length > MAX_DELTA_INPUT:
            return None
        self._progress(f"reading the installed version {installed}")
        base = bundle_tar(self.layout.version_dir(installed))
        sha = sha256_hex(base)
        usable = sorted((d for d in candidates if d.base == sha), key=lambda d: d.length)
        return (usable[0], base) if usable else None
