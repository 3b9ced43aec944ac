"""The program's own bundle as one byte string: a deterministic tar, and its safe unpacking.

The publisher tars the bundle folder (``dist/aegis/``) and the client rebuilds the same tar
from the installed copy of a version to apply a delta to it, so the tar depends on nothing
but the files' names, contents, executable bits and symlinks: names sorted, owner 0, time 0,
modes 0755/0644. A client whose installed copy differs (a file changed by hand) gets another
SHA-256 than the signed one, and downloads the full bundle instead.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from ..errors import UpdateRefused

__all__ = [
    "MAX_BUNDLE",
    "HashingWriter",
    "bundle_digest",
    "bundle_tar",
    "unpack_bundle",
    "write_bundle_tar",
]

MAX_BUNDLE = 2 * 1024 * 1024 * 1024
"""An app bundle (unpacked tar) is never larger than this."""


def _entries(root: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            p = base / name
            out.append((p.relative_to(root).as_posix(), p))
    out.sort()
    return out


def write_bundle_tar(root: Path, out: BinaryIO) -> None:
    """Write the deterministic tar of the bundle folder ``root`` to ``out`` (streamed)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for rel, p in _entries(root):
            st = p.lstat()
            info = tarfile.TarInfo(rel)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if stat.S_ISLNK(st.st_mode):
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(p)
                info.mode = 0o777
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)


def bundle_tar(root: Path) -> bytes:
    """The deterministic tar of the bundle folder ``root`` (small bundles, tests)."""
    buf = io.BytesIO()
    write_bundle_tar(root, buf)
    return buf.getvalue()


class HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what is written to it, and passes it on
    to ``out`` when given."""

    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.length = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.length += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)


def bundle_digest(root: Path) -> tuple[str, int]:
    """SHA-256 and length of the deterministic tar of ``root``, without holding it."""
    sink = HashingWriter()
    write_bundle_tar(root, sink)  # type: ignore[arg-type]
    return sink.hash.hexdigest(), sink.length


def _check_member(m: tarfile.TarInfo) -> None:
    p = PurePosixPath(m.name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise UpdateRefused(f"unsafe path in the app bundle: {m.name!r}")
    if not (m.isfile() or m.isdir() or m.issym()):
        raise UpdateRefused(f"unexpected entry in the app bundle: {m.name!r}")
    if m.issym():
        target = PurePosixPath(m.linkname)
        resolved = (p.parent / target).parts
        depth = 0
        for part in resolved:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            raise UpdateRefused(f"link out of the app bundle: {m.name!r} -> {m.linkname!r}")


def unpack_bundle(data: bytes | Path, dest: Path) -> None:
    """Unpack a bundle tar (bytes, or a tar file; already verified against its signed hash)
    into ``dest``; refuses absolute paths, ``..``, links out of the folder and device files
    all the same."""
    dest.mkdir(parents=True, exist_ok=False, mode=0o755)
    src: BinaryIO = open(data, "rb") if isinstance(data, Path) else io.BytesIO(data)  # noqa: SIM115
    with src, tarfile.open(fileobj=src, mode="r:") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m)
        tar.extractall(dest, members=members, filter="data")
