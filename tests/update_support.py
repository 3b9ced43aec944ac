"""Build signed update repositories for tests (keys made here; nothing ships)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aegis_engine.content import bundled_resources
from aegis_engine.paths import AegisPaths
from aegis_engine.repo.publish import record_base, release
from aegis_engine.repo.tufrepo import TufRepo
from aegis_engine.updates.index import CONTENT_TOPS
from tests.https_server import HTTPSServer, https_server


@dataclass
class Repo:
    root: Path
    keys: Path
    work: Path
    expiry_days: dict[str, float] | None = None

    @property
    def root_json(self) -> Path:
        return self.root / "metadata" / "1.root.json"

    @property
    def tuf(self) -> TufRepo:
        return TufRepo(self.root, self.keys, self.expiry_days)

    def content(self, name: str) -> Path:
        """A copy of the bundled content to change (``<work>/<name>``)."""
        dest = self.work / name
        if not dest.exists():
            src = bundled_resources()
            dest.mkdir(parents=True)
            for top in CONTENT_TOPS:
                if (src / top).is_dir():
                    shutil.copytree(src / top, dest / top)
                elif (src / top).is_file():
                    shutil.copy2(src / top, dest / top)
        return dest

    def release(self, content: Path) -> int:
        return release(self.root, self.keys, content, expiry_days=self.expiry_days).version


def make_repo(tmp: Path, *, root_keys: int = 1, root_threshold: int = 1) -> Repo:
    repo = Repo(tmp / "repo", tmp / "keys", tmp / "work")
    repo.work.mkdir(parents=True, exist_ok=True)
    repo.tuf.init(root_keys=root_keys, root_threshold=root_threshold)
    record_base(repo.root, bundled_resources())
    return repo


def add_hash_line(content: Path, sha256: str, size: int, name: str) -> None:
    with (content / "hashes" / "aegis-testfiles.hsb").open("a") as fh:
        fh.write(f"{sha256}:{size}:{name}\n")


@contextlib.contextmanager
def serving(tmp: Path, repo: Repo, paths: AegisPaths) -> Iterator[HTTPSServer]:
    """A real HTTPS server on 127.0.0.1 (trustme) serving ``repo``, its CA trusted by the
    profile ``paths`` (``[updates] ca_file``)."""
    with https_server(tmp, root=repo.root) as srv:
        paths.ensure(paths.config_dir)
        paths.settings_file.write_text(f'[updates]\nca_file = "{srv.ca_file}"\n')
        yield srv
