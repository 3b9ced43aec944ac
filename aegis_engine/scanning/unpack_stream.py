"""Bounded, budget-charged decompression: gzip/zlib/deflate, bzip2, xz and lzma streams, and a
forward-only file object over the result (what tarfile reads a compressed tar from)."""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from ..errors import ContainerError
from .budget import ExtractionBudget
from .unpack_io import CHUNK, INPUT_CHUNK, MAX_HEADER_READ, PositionedReader

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

LZMA_MEMLIMIT = 256 * 1024 * 1024
"""Largest decoder memory an xz/lzma stream may ask for (xz -9 needs about 65 MiB)."""


class Decompressor(Protocol):
    """What bz2.BZ2Decompressor and lzma.LZMADecompressor offer (zlib is adapted to it)."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


class ZlibDecompressor:
    """zlib.decompressobj with the bz2/lzma ``needs_input`` interface and bounded output."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._more = False

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._more and not self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        tail = self._d.unconsumed_tail
        out = self._d.decompress(tail + data if tail else data, max(0, max_length))
        # Output may still be pending inside zlib when the limit was hit exactly.
        self._more = bool(self._d.unconsumed_tail) or (
            max_length > 0 and len(out) >= max_length and not self._d.eof
        )
        return out


STREAM_KINDS: dict[str, tuple[str, bytes]] = {
    "GZIP": ("gzip", b"\x1f\x8b"),
    "BZIP2": ("bzip2", b"BZh"),
    "XZ": ("xz", b"\xfd7zXZ\x00"),
    "LZMA": ("lzma", b""),
}


def new_decompressor(kind: str) -> Decompressor:
    if kind == "gzip":
        return ZlibDecompressor(31)
    if kind == "deflate":
        return ZlibDecompressor(-15)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=LZMA_MEMLIMIT)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMLIMIT)
    raise ValueError(f"unknown compression {kind!r}")


_DECOMPRESS_ERRORS = (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError)


def inflate(
    make: Callable[[], Decompressor],
    label: str,
    read_input: Callable[[int], bytes],
    budget: ExtractionBudget | None = None,
    *,
    magic: bytes = b"",
) -> Iterator[bytes]:
    """Decompress what ``read_input`` returns, yielding chunks of at most :data:`CHUNK` bytes.

    With ``budget``, every decompressed byte is charged as it is produced (LimitExceeded stops
    a ratio bomb before it is inflated). With ``magic``, concatenated streams are followed
    (gzip and bzip2 multi-member files, xz with padding); other trailing bytes are ignored.
    Damaged or truncated input raises ContainerError.
    """
    d = _start(make, label)
    data = b""
    stalls = 0
    while True:
        if d.eof:
            if not magic:
                return
            data = _next_stream(d.unused_data, read_input, magic)
            if not data:
                return
            d = _start(make, label)
        elif d.needs_input and not data:
            data = read_input(INPUT_CHUNK)
            if not data:
                raise ContainerError(f"{label}: truncated (compressed data ends early)")
        try:
            out = d.decompress(data, CHUNK)
        except _DECOMPRESS_ERRORS as exc:
            raise ContainerError(f"{label}: damaged compressed data ({exc})") from exc
        data = b""
        if out:
            stalls = 0
            if budget is not None:
                budget.add_bytes(len(out))
            yield out
        elif not d.needs_input and not d.eof:
            stalls += 1
            if stalls > 3:
                raise ContainerError(f"{label}: decompressor makes no progress")


def _start(make: Callable[[], Decompressor], label: str) -> Decompressor:
    try:
        return make()
    except _DECOMPRESS_ERRORS as exc:  # e.g. invalid LZMA properties
        raise ContainerError(f"{label}: unsupported compression parameters ({exc})") from exc


def _next_stream(rest: bytes, read_input: Callable[[int], bytes], magic: bytes) -> bytes:
    while True:
        rest = rest.lstrip(b"\x00")
        if len(rest) >= len(magic):
            return rest if rest.startswith(magic) else b""
        more = read_input(INPUT_CHUNK)
        if not more:
            return b""
        rest += more


class DecompressStream(PositionedReader):
    """A forward-only file object over decompressed chunks (what tarfile reads a .tar.gz from).

    Seeking forward reads and discards (so skipped bytes are decompressed and charged too);
    seeking backwards is refused.
    """

    def __init__(self, chunks: Iterator[bytes], label: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._label = label
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._error: ContainerError | None = None

    def _fill(self, n: int) -> None:
        # A damaged stream's error is kept until the bytes decompressed before it are used.
        while len(self._buf) < n and not self._eof:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._eof = True
            except ContainerError as exc:
                self._error = exc
                self._eof = True

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buf[:n])

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER_READ:
            raise ContainerError(f"{self._label}: unbounded read (oversized header?)")
        self._fill(size)
        if self._error is not None and len(self._buf) < size:
            raise self._error
        out = bytes(self._buf[:size])
        del self._buf[:size]
        self._pos += len(out)
        return out

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        with memoryview(buffer) as target, target.cast("B") as out:
            data = self.read(out.nbytes)
            out[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._pos:
            raise ContainerError(f"{self._label}: cannot seek backwards in a compressed stream")
        while self._pos < target:
            self._fill(min(CHUNK, target - self._pos))
            if self._error is not None and len(self._buf) < target - self._pos:
                raise self._error
            if not self._buf:
                self._pos = target  # past the end, like a file: the next read returns b""
                break
            n = min(len(self._buf), target - self._pos)
            del self._buf[:n]
            self._pos += n
        return self._pos

    def chunks(self) -> Iterator[bytes]:
        """The rest of the stream, chunk by chunk."""
        if self._buf:
            out = bytes(self._buf)
            self._buf.clear()
            self._pos += len(out)
            yield out
        if not self._eof:
            for chunk in self._chunks:
                self._pos += len(chunk)
                yield chunk
            self._eof = True
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


class Deflate64Decompressor:
    """Deflate64 (zip method 9) through ``inflate64``, with the bounded-output interface:
    input is fed in 1 KiB steps, so one step produces about 1 MiB at most (deflate64's
    largest ratio is about 1:1032)."""

    _STEP = 1024

    def __init__(self) -> None:
        import inflate64  # only for a deflate64 member

        self._d = inflate64.Inflater()
        self._input = b""
        self._out = bytearray()

    @property
    def eof(self) -> bool:
        return bool(self._d.eof) and not self._out

    @property
    def needs_input(self) -> bool:
        return not self._input and not self._out and not self._d.eof

    @property
    def unused_data(self) -> bytes:
        return b""

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        self._input += data
        limit = max_length if max_length > 0 else 1 << 62
        while len(self._out) < limit and self._input and not self._d.eof:
            step, self._input = self._input[: self._STEP], self._input[self._STEP :]
            self._out += self._d.inflate(step)
        out = bytes(self._out[:limit])
        del self._out[:limit]
        return out
