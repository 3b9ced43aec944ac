"""A delta between two builds of the program, file by file, applied without holding a build.

A *delta pack* is a tar: first ``pack.json``, the manifest, which lists what differs from the
installed build: the paths it no longer has (``remove``), and each folder, link and file that
is new or changed (``entries``), for a file its mode, SHA-256 and length and how to get it:

* ``same``: the installed build has that file at another path (``ref``, a file moved);
* ``bsdiff4`` / ``zstd``: a delta (:mod:`.delta`) from the installed file at the same path,
  member ``d/<path>`` of the pack;
* ``new``: the whole file, member ``n/<path>``.

Everything else is the installed build's, copied as it is. The publisher makes the pack from
the two bundle folders (:func:`make_pack`); the client builds the new folder from the
installed one and the pack (:func:`apply_pack`), checking each new file's SHA-256 as it is
written, so that at most one file and its delta are in memory at a time
(bounded by :data:`~.delta.MAX_DELTA_INPUT`; a file above it comes whole). The caller then
checks the whole new folder against the signed SHA-256 of the bundle's tar.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO

import pyzstd

from ..errors import ContentError, UpdateRefused
from .app_bundle import HashingWriter, _check_member, _entries
from .delta import MAX_DELTA_INPUT, apply_delta, best_delta
from .session import file_sha256

__all__ = ["apply_pack", "make_pack"]

MANIFEST = "pack.json"
FORMAT = 1
CHUNK = 1 << 20
MIN_DELTA = 1024
"""Smaller files come whole (a delta would not be smaller)."""


def _add(tar: tarfile.TarFile, name: str, data: bytes | Path) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.mode = 0o644
    if isinstance(data, Path):
        info.size = data.stat().st_size
        with open(data, "rb") as fh:
            tar.addfile(info, fh)
    else:
        info.size = len(data)
        tar.addfile(info, _Reader(data))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return out


def _describe(p: Path) -> tuple[str, ...]:
    """What the tar records of an entry: its kind, and a link's target or a file's mode and
    content (as a SHA-256)."""
    st = p.lstat()
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(p))
    if stat.S_ISDIR(st.st_mode):
        return ("dir",)
    if stat.S_ISREG(st.st_mode):
        return ("file", "x" if st.st_mode & stat.S_IXUSR else "", file_sha256(p))
    return ("other",)


def make_pack(base: Path, new: Path, out: BinaryIO) -> dict[str, int]:
    """Write the delta pack from bundle folder ``base`` to ``new``; counts by kind."""
    old = {rel: _describe(p) for rel, p in _entries(base)}
    by_sha = {d[2]: rel for rel, d in sorted(old.items(), reverse=True) if d[0] == "file"}
    seen: set[str] = set()
    remove: list[str] = []
    entries: list[list[Any]] = []
    members: list[tuple[str, bytes | Path]] = []
    counts: dict[str, int] = {}
    for rel, p in _entries(new):
        seen.add(rel)
        d = _describe(p)
        was = old.get(rel)
        if d == was or d[0] == "other":
            continue
        if was is not None and (was[0] != d[0] or d[0] == "link"):
            remove.append(rel)
        if d[0] != "file":
            entries.append([rel, *d])
            continue
        x, sha = d[1], d[2]
        size = p.stat().st_size
        how, ref = "new", ""
        if sha in by_sha:
            how, ref = "same", by_sha[sha]
        elif was is not None and was[0] == "file" and MIN_DELTA <= size <= MAX_DELTA_INPUT:
            base_file = base / rel
            if base_file.stat().st_size >= MIN_DELTA:
                plain = p.read_bytes()
                best = best_delta(base_file.read_bytes(), plain)
                if best is not None and len(best[1]) < len(pyzstd.compress(plain, 3)):
                    how, ref = best[0], rel
                    members.append((f"d/{rel}", best[1]))
        if how == "new":
            members.append((f"n/{rel}", p))
        counts[how] = counts.get(how, 0) + 1
        entries.append([rel, "file", x, sha, size, how, ref])
    remove += [rel for rel in old if rel not in seen]
    doc = {"format": FORMAT, "remove": sorted(remove), "entries": entries}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        _add(tar, MANIFEST, json.dumps(doc, separators=(",", ":")).encode())
        for name, data in members:
            _add(tar, name, data)
    counts["removed"] = len(remove)
    return counts


def _safe(rel: str) -> str:
    info = tarfile.TarInfo(rel)
    _check_member(info)
    return str(PurePosixPath(rel))


def apply_pack(pack: Path, base: Path, dest: Path) -> None:
    """Build the new bundle folder ``dest`` from the installed folder ``base`` and the pack
    file ``pack`` (already checked against its signed hash). Raises :class:`UpdateRefused`
    when a file does not come out as the manifest says."""
    base = base.resolve()
    with tarfile.open(pack, mode="r:") as tar:
        try:
            raw = tar.extractfile(MANIFEST)
            doc = json.loads(raw.read() if raw else b"")
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            remove = {_safe(str(r)) for r in doc["remove"]}
            entries = list(doc["entries"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise UpdateRefused(f"the delta pack has no valid manifest: {exc}") from exc
        _copy_base(base, dest, remove)
        for e in entries:
            _apply_entry(tar, e, base, dest)


def _copy_base(base: Path, dest: Path, remove: set[str]) -> None:
    """The installed build without the removed paths (and what is below them)."""
    dest.mkdir(parents=True, exist_ok=False, mode=0o755)
    for rel, p in _entries(base):
        parts = PurePosixPath(rel).parts
        if any("/".join(parts[:i]) in remove for i in range(1, len(parts) + 1)):
            continue
        target = dest / rel
        if p.is_symlink():
            target.symlink_to(os.readlink(p))
        elif p.is_dir():
            target.mkdir(mode=0o755)
        elif p.is_file():
            shutil.copyfile(p, target)
            os.chmod(target, 0o755 if p.stat().st_mode & stat.S_IXUSR else 0o644)


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        fh = tar.extractfile(name)
    except KeyError:
        fh = None
    if fh is None:
        raise UpdateRefused(f"the delta pack lacks {name}")
    return fh


def _base_file(base: Path, ref: str) -> Path:
    src = (base / _safe(ref)).resolve()
    if base not in src.parents or not src.is_file():
        raise UpdateRefused(f"the installed build has no file {ref}")
    return src


def _apply_entry(tar: tarfile.TarFile, e: list[Any], base: Path, dest: Path) -> None:
    rel = _safe(str(e[0]))
    target = dest / rel
    kind = e[1]
    if kind == "dir":
        target.mkdir(mode=0o755, exist_ok=True)
        return
    if target.is_symlink() or target.is_file():
        target.unlink()  # changed: made again below
    if kind == "link":
        link = tarfile.TarInfo(rel)
        link.type, link.linkname = tarfile.SYMTYPE, str(e[2])
        _check_member(link)
        target.symlink_to(link.linkname)
        return
    if kind != "file":
        raise UpdateRefused(f"unknown entry kind in the delta pack: {kind!r}")
    x, sha, length, how, ref = str(e[2]), str(e[3]), int(e[4]), str(e[5]), str(e[6])
    with open(target, "xb") as fh:  # "x": never through a link the pack made
        out = HashingWriter(fh)
        if how == "same":
            with open(_base_file(base, ref), "rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
        elif how in ("bsdiff4", "zstd"):
            old = _base_file(base, ref).read_bytes()
            patch = _member(tar, f"d/{rel}").read()
            try:
                out.write(apply_delta(old, patch, how, length))
            except ContentError as exc:
                raise UpdateRefused(f"the delta for {rel} cannot be applied: {exc}") from exc
            del old, patch
        elif how == "new":
            member = _member(tar, f"n/{rel}")
            while chunk := member.read(CHUNK):
                out.write(chunk)
        else:
            raise UpdateRefused(f"unknown way to make {rel}: {how!r}")
    if out.length != length or out.hash.hexdigest() != sha:
        raise UpdateRefused(f"{rel} from the delta does not match its signed hash")
    os.chmod(target, 0o755 if x else 0o644)
