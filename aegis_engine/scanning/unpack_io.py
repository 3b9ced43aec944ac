"""Plumbing shared by the unpackers: a zero-copy reader over the container, member sinks,
member labels.

Nothing here ever writes a file named after an archive member: large members go to a private
``tempfile.mkstemp`` file in the scanner's temp directory and are mmapped read-only.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import tempfile
import unicodedata
import zlib
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from ..detectors.base import Buffer
from ..display import human_size
from ..errors import ContainerError
from .budget import ExtractionBudget, Member

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

CHUNK = 256 * 1024
"""Most decompressed bytes produced (and charged to the budget) in one step."""
INPUT_CHUNK = 64 * 1024
"""Compressed bytes fed to a decompressor in one step."""
MAX_HEADER_READ = 64 * 1024 * 1024
"""Largest single read a forward-only stream serves (tar long-name/pax headers are read whole)."""


class PositionedReader(io.RawIOBase):
    """A readable file object that can seek (at least forwards) and keeps its position in
    ``_pos``."""

    _pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos


class BufferReader(PositionedReader):
    """A read-only, seekable file object over a buffer (bytes or mmap) that copies nothing up
    front: each read copies only what was asked for. Call :meth:`close` to release the view
    (an mmap cannot be closed while a view on it exists)."""

    def __init__(self, data: Buffer, *, max_read: int = 0) -> None:
        super().__init__()
        self._base = memoryview(data)
        self._mv = self._base.cast("B") if self._base.format != "B" else self._base
        self._pos = 0
        self._max_read = max_read

    def __len__(self) -> int:
        return self._mv.nbytes

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = len(self) + offset
        else:
            raise OSError(f"invalid whence {whence}")
        if target < 0:
            raise OSError("negative seek position")
        self._pos = target
        return target

    def read(self, size: int | None = -1, /) -> bytes:
        end = len(self) if size is None or size < 0 else min(len(self), self._pos + size)
        if self._max_read and end - self._pos > self._max_read:
            raise ContainerError(f"a single read of {end - self._pos} bytes (oversized header?)")
        if end <= self._pos:
            return b""
        out = bytes(self._mv[self._pos : end])
        self._pos = end
        return out

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as target, target.cast("B") as out:
            n = max(0, min(out.nbytes, len(self) - self._pos))
            out[:n] = self._mv[self._pos : self._pos + n]
        self._pos += n
        return n

    def pread(self, offset: int, size: int) -> bytes:
        """Bytes at ``offset`` without moving the file position."""
        if offset < 0 or offset >= len(self):
            return b""
        return bytes(self._mv[offset : offset + size])

    def close(self) -> None:
        if not self.closed:
            if self._mv is not self._base:
                self._mv.release()
            self._base.release()
        super().close()


class MemberSink:
    """Collects one member's bytes: in memory up to a threshold, then in a private temp file.

    ``write`` returns False once the member passed max-file-size (its bytes are dropped and
    :meth:`member` reports the problem). With ``charge`` every byte is charged to the budget.
    Use as a context manager: on an exception the temp file is removed.
    """

    def __init__(
        self,
        name: str,
        budget: ExtractionBudget,
        tmpdir: Path,
        *,
        charge: bool,
        declared_size: int | None = None,
        memory_limit: int | None = None,
    ) -> None:
        self.name = name
        self.size = 0
        self.too_big = False
        self._budget = budget
        self._tmpdir = tmpdir
        self._charge = charge
        self._declared = declared_size
        limits = budget.limits
        self._max_size = limits.max_file_size
        self._memory_limit = limits.in_memory_member_size if memory_limit is None else memory_limit
        self._parts: list[bytes] = []
        self._fd = -1
        self._path = ""

    def __enter__(self) -> MemberSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def write(self, chunk: bytes | memoryview) -> bool:
        n = len(chunk)
        if self._charge:
            self._budget.add_bytes(n)
        self.size += n
        if self.too_big:
            return False
        if self._max_size and self.size > self._max_size:
            self.too_big = True
            self.discard()
            return False
        if self._fd < 0 and self.size <= self._memory_limit:
            self._parts.append(bytes(chunk))
            return True
        if self._fd < 0:
            self._fd, self._path = tempfile.mkstemp(prefix="aegis-", dir=self._tmpdir)
            for part in self._parts:
                _write_all(self._fd, part)
            self._parts.clear()
        _write_all(self._fd, chunk)
        return True

    def member(self) -> Member:
        """The finished member; the sink hands over its temp file (if any) to it."""
        if self.too_big:
            size = max(self.size, self._declared or 0)
            return Member(
                self.name,
                b"",
                size,
                problem=f"max-file-size: member is larger than {human_size(self._max_size)}",
            )
        if self._fd < 0:
            data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts.clear()
            return Member(self.name, data, len(data))
        fd, path = self._fd, self._path
        self._fd, self._path = -1, ""
        try:
            view = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except BaseException:
            os.close(fd)
            _unlink(path)
            raise
        os.close(fd)  # the mapping keeps its own handle
        member = Member(self.name, view, self.size)
        member._closers.append(lambda: _unlink(path))
        return member

    def discard(self) -> None:
        self._parts.clear()
        if self._fd >= 0:
            fd, path = self._fd, self._path
            self._fd, self._path = -1, ""
            os.close(fd)
            _unlink(path)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    with memoryview(data) as view:
        while view:
            written = os.write(fd, view)
            view = view[written:]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def member_label(name: str | bytes | None) -> str:
    """A member's display name: its stored name, with control and bidi-format characters
    escaped (``\\x1b``, ``\\u202e``); ``!``, ``../`` and absolute paths are kept as stored."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "backslashreplace")
    if not name:
        return "<unnamed>"
    return "".join(_escape(ch) for ch in name)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"):
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def single_member_name(outer: str, suffixes: tuple[str, ...]) -> str:
    """``a.exe.gz`` -> ``a.exe``; a name without a known suffix gets ``.out``."""
    lower = outer.lower()
    for suffix in suffixes:
        if lower.endswith(suffix) and len(outer) > len(suffix):
            return outer[: -len(suffix)]
    return f"{outer or 'stream'}.out"


def member_from_bytes(name: str, data: bytes, budget: ExtractionBudget, tmpdir: Path) -> Member:
    """A member made of bytes a decoder produced in one piece, charged to the budget."""
    with MemberSink(name, budget, tmpdir, charge=True) as sink, memoryview(data) as view:
        for start in range(0, len(view), CHUNK):
            if not sink.write(view[start : start + CHUNK]):
                break
        return sink.member()


def inflate_into(data: bytes, sink: MemberSink, wbits: int = 15) -> None:
    """Inflate zlib/deflate ``data`` into ``sink`` in bounded steps; damage ends it quietly
    (what was inflated so far stays in the sink)."""
    d = zlib.decompressobj(wbits)
    try:
        while not d.eof:
            out = d.decompress(data, CHUNK)
            data = d.unconsumed_tail
            if out and not sink.write(out):
                return
            if not out and not data:
                return
    except zlib.error:
        return
