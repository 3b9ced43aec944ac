"""The program's own updates: check, download (a delta when it has the base), verify, stage.

The same TUF session as content updates (:mod:`.session`: the shipped root, the same metadata
folder, the same fetcher on the network layer and the same consent purpose) verifies the app
index of this platform (:mod:`.app_index`). When the index offers a delta pack from the
installed build (the SHA-256 of its tar, :func:`.app_bundle.bundle_digest`), the client
downloads that, else the full sealed tar; either is appended to a partial file that an
interrupted download resumes (:meth:`.session.TufSession.download_to`), checked against its
signed SHA-256, then unsealed frame by frame. The new folder is built beside the installed
one, one file at a time (:func:`.app_delta.apply_pack`, or unpacking the tar), checked whole
against the signed SHA-256 of the bundle's tar, and only then marked staged
(:meth:`.app_layout.AppLayout.stage_built`): the launcher switches to it at the next start.
Memory stays bounded by the largest file of the bundle, never the bundle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ContentError, UpdateRefused
from ..paths import AegisPaths
from .app_bundle import MAX_BUNDLE, HashingWriter, bundle_digest, unpack_bundle
from .app_delta import apply_pack
from .app_index import DELTAS, AppIndex, app_target, current_platform, version_key
from .app_layout import AppLayout
from .client import Progress
from .fetcher import RangeFetcher
from .index import DeltaEntry
from .seal import unseal_file
from .session import TufSession, failure

__all__ = ["AppUpdateClient", "AppUpdateResult"]

MAX_APP_INDEX = 1024 * 1024


@dataclass
class AppUpdateResult:
    result: str
    """``staged`` | ``available`` (found, not downloaded) | ``current`` | ``refused`` |
    ``failed`` | ``unavailable``."""
    version: str | None
    """The version staged (or offered), else the installed one."""
    installed_version: str | None
    bytes_downloaded: int
    reason: str
    delta: bool = False
    """The update came as a delta from the installed build."""

    @property
    def ok(self) -> bool:
        return self.result in ("staged", "available", "current")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class AppUpdateClient:
    """One check for a new build of the program installed in ``layout``; with
    ``stage=False`` it only says whether there is one."""

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
        stage: bool = True,
    ) -> None:
        self.paths = paths
        self.layout = layout
        self.fetcher = fetcher
        self.session = TufSession(paths, fetcher, base_url=base_url, root=root)
        self.platform = platform or current_platform()
        self.stage = stage
        self._progress = progress or (lambda _m: None)
        self.work = paths.cache_dir / "app-update"
        """Partial downloads (resumed by the next check) and unsealed files."""

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
        except Exception as exc:
            outcome = failure(exc)
            if outcome is None:
                raise
            return self._result(*outcome)

    def _run(self) -> AppUpdateResult:
        installed = self.layout.installed_version or ""
        self._progress("checking for a new version of Aegis")
        name = app_target(self.platform)
        info = self.session.target_info(name, MAX_APP_INDEX, "the app index")
        if info is None:
            return self._result("current", f"no build for {self.platform} is published")
        index = AppIndex.from_json(self.session.read_target(name, info, "the app index"))
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
        if not self.stage:
            return self._result(
                "available", f"version {index.version} is available", index.version
            )
        if not self.layout.writable():
            return self._result(
                "failed",
                f"{self.layout.lib} is not writable by this user: version {index.version} "
                "must be installed by whoever installed Aegis",
                index.version,
            )
        used: list[bool] = []
        self.layout.stage_built(
            index.version, lambda folder: used.append(self._build(index, installed, folder))
        )
        how = "a delta" if used[0] else "the full bundle"
        return self._result(
            "staged",
            f"version {index.version} is ready ({how}); it starts the next time Aegis starts",
            index.version,
            delta=used[0],
        )

    # -- building the new folder ---------------------------------------------------------------

    def _build(self, index: AppIndex, installed: str, folder: Path) -> bool:
        """Make ``folder`` the new build; True when it came from a delta."""
        self.paths.ensure(self.work)
        plain = self.work / f"{index.sha256}.plain"
        try:
            delta = self._usable_delta(index, installed)
            if delta is not None:
                self._progress(f"version {index.version}: delta, {delta.length} bytes")
                self._fetch_plain(delta.path_in(DELTAS), delta.length, delta.sha256, plain, index)
                self._progress(f"building version {index.version}")
                apply_pack(plain, self.layout.version_dir(installed), folder)
            else:
                self._progress(f"version {index.version}: {index.blob_length} bytes")
                tar_sha = self._fetch_plain(
                    index.blob_path, index.blob_length, index.bundle.blob_sha256, plain, index
                )
                if tar_sha != index.sha256:
                    raise UpdateRefused(f"version {index.version} does not match its signed hash")
                self._progress(f"unpacking version {index.version}")
                unpack_bundle(plain, folder)
        finally:
            plain.unlink(missing_ok=True)
        if bundle_digest(folder) != (index.sha256, index.length):
            raise UpdateRefused(f"version {index.version} does not match its signed hash")
        return delta is not None

    def _fetch_plain(self, path: str, length: int, sha: str, plain: Path, index: AppIndex) -> str:
        """Download (resuming) and check a sealed target, unseal it into ``plain``; the
        SHA-256 of what was unsealed."""
        partial = self.work / f"{sha}.partial"
        what = f"the download of version {index.version}"
        self.session.download_to(path, length, sha, partial, what)
        with open(partial, "rb") as src, open(plain, "wb") as dst:
            sink = HashingWriter(dst)
            try:
                unseal_file(src, sink, max_size=MAX_BUNDLE)  # type: ignore[arg-type]
            except ContentError as exc:
                partial.unlink()  # signed but unusable: never resumed
                raise UpdateRefused(f"{what}: {exc}") from exc
        partial.unlink()
        return sink.hash.hexdigest()

    def _usable_delta(self, index: AppIndex, installed: str) -> DeltaEntry | None:
        """The smallest delta pack from the installed build, when one beats the full tar."""
        candidates = [d for d in index.deltas if d.length < index.blob_length]
        if not candidates:
            return None
        self._progress(f"reading the installed version {installed}")
        sha, _ = bundle_digest(self.layout.version_dir(installed))
        usable = sorted((d for d in candidates if d.base == sha), key=lambda d: d.length)
        return usable[0] if usable else None
