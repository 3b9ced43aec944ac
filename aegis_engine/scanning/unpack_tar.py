"""TAR (plain, or inside gzip/bzip2/xz/lzma) and single compressed streams."""

from __future__ import annotations

import functools
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from ..detectors.base import ScanObject
from ..display import human_size
from ..errors import ContainerError
from .budget import ExtractionBudget, Member
from .sniff import is_tar_header
from .unpack_io import (
    CHUNK,
    MAX_HEADER_READ,
    BufferReader,
    MemberSink,
    member_label,
    single_member_name,
)
from .unpack_stream import STREAM_KINDS, DecompressStream, inflate, new_decompressor

_SUFFIXES = {
    "gzip": (".gz", ".z"),
    "bzip2": (".bz2", ".bz"),
    "xz": (".xz",),
    "lzma": (".lzma",),
}
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, OverflowError, UnicodeError)


def iter_tar(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    reader = BufferReader(obj.data, max_read=MAX_HEADER_READ)
    try:
        yield from tar_members(reader, budget, tmpdir, label="tar", compressed=False)
    finally:
        reader.close()


def tar_members(
    fileobj: io.RawIOBase,
    budget: ExtractionBudget,
    tmpdir: Path,
    *,
    label: str,
    compressed: bool,
) -> Iterator[Member]:
    """Members of the tar read from ``fileobj``, in order; links, directories and devices
    are skipped. With ``compressed``, ``fileobj`` already charges what it decompresses."""
    try:
        tf = tarfile.TarFile(fileobj=cast(IO[bytes], fileobj))
    except _TAR_ERRORS as exc:
        raise ContainerError(f"{label}: {exc}") from exc
    with tf:
        while True:
            try:
                info = tf.next()
            except _TAR_ERRORS as exc:
                raise ContainerError(f"{label}: {exc}") from exc
            if info is None:
                return
            cast(Any, tf).members.clear()  # read once, in order: keep no per-entry state
            budget.check_time()
            if not info.isreg():
                continue
            name = member_label(info.name)
            budget.add_file()
            max_size = budget.limits.max_file_size
            if max_size and info.size > max_size:
                yield Member(
                    name,
                    b"",
                    info.size,
                    problem=f"max-file-size: member declares {human_size(info.size)} "
                    f"(limit {human_size(max_size)})",
                )
                continue
            # Sparse holes are produced without being decompressed: charge them as well.
            charge = not compressed or info.issparse()
            error: ContainerError | None = None
            with MemberSink(name, budget, tmpdir, charge=charge, declared_size=info.size) as sink:
                try:
                    fh = tf.extractfile(info)
                    while fh is not None and (chunk := fh.read(CHUNK)):
                        if not sink.write(chunk):
                            break
                except _TAR_ERRORS as exc:
                    error = ContainerError(f"{label}: member {name}: {exc}")
                member = sink.member()
            yield member
            if error is not None:
                raise error


def iter_stream(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    """A single gzip/bzip2/xz/lzma stream: one member, or the members of the tar inside."""
    kind, magic = STREAM_KINDS[obj.filetype]
    reader = BufferReader(obj.data)
    chunks = inflate(
        functools.partial(new_decompressor, kind), kind, reader.read, budget, magic=magic
    )
    stream = DecompressStream(chunks, kind)
    try:
        if is_tar_header(stream.peek(512)):
            yield from tar_members(stream, budget, tmpdir, label=f"{kind}+tar", compressed=True)
            return
        name = member_label(single_member_name(obj.name, _SUFFIXES[kind]))
        budget.add_file()
        error: ContainerError | None = None
        with MemberSink(name, budget, tmpdir, charge=False) as sink:
            try:
                for chunk in stream.chunks():
                    if not sink.write(chunk):
                        break
            except ContainerError as exc:
                error = exc
            member = sink.member()
        yield member
        if error is not None:
            raise error
    finally:
        stream.close()
        reader.close()
