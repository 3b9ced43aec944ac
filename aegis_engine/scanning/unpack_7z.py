"""7z through py7zr, used when libarchive is not importable.

py7zr pushes decompressed data into writer objects, so members are collected while it runs
and yielded afterwards. Each member streams into a :class:`MemberSink` (budget charged as
bytes arrive) and the members held in memory together never exceed in_memory_member_size:
beyond that they go to private temp files. Nothing is written by member name (py7zr's own
path handling is bypassed: writers are keyed by entry id).
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from ..detectors.base import ScanObject
from ..errors import ContainerError, LimitExceeded
from .budget import ExtractionBudget, Member
from .unpack_io import BufferReader, MemberSink, member_label

try:
    import py7zr
    from py7zr.exceptions import ArchiveError as Py7zrArchiveError
    from py7zr.exceptions import PasswordRequired
    from py7zr.io import MemIO, Py7zIO, WriterFactory

    HAVE_PY7ZR = True
except Exception:
    HAVE_PY7ZR = False

_PY7ZR_STEP = 1024 * 1024
"""py7zr inflates up to ``get_memory_limit()`` bytes (128 MB) per step before handing them to
the writer; this process only reads 7z through here, so that step is bounded to 1 MiB: the
budget then sees a ratio bomb within a MiB, and memory stays small."""
if HAVE_PY7ZR and callable(getattr(py7zr.py7zr, "get_memory_limit", None)):
    py7zr.py7zr.get_memory_limit = lambda: _PY7ZR_STEP  # type: ignore[attr-defined]

_ERRORS: tuple[type[BaseException], ...] = (
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    NotImplementedError,
)
if HAVE_PY7ZR:
    _ERRORS = (Py7zrArchiveError, PasswordRequired, *_ERRORS)


if HAVE_PY7ZR:

    class _SinkIO(Py7zIO):
        def __init__(self, sink: MemberSink, done: list[Member]) -> None:
            self._sink = sink
            self._done = done

        def write(self, s: bytes | bytearray) -> int:
            self._sink.write(bytes(s))
            return len(s)

        def read(self, size: int | None = None) -> bytes:
            return b""

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def flush(self) -> None:
            pass

        def size(self) -> int:
            return self._sink.size

        def close(self) -> None:
            self._done.append(self._sink.member())

    class _SinkFactory(WriterFactory):
        def __init__(self, files: dict[str, Any], budget: ExtractionBudget, tmpdir: Path) -> None:
            self.files = files
            self.budget = budget
            self.tmpdir = tmpdir
            self.members: list[Member] = []
            self.sinks: list[MemberSink] = []

        def create(self, filename: str) -> Py7zIO:
            entry = self.files[filename]
            self.budget.add_file()
            held = sum(len(m.data) for m in self.members if isinstance(m.data, bytes))
            room = max(0, self.budget.limits.in_memory_member_size - held)
            sink = MemberSink(
                member_label(entry.filename),
                self.budget,
                self.tmpdir,
                charge=True,
                declared_size=entry.uncompressed,
                memory_limit=room,
            )
            self.sinks.append(sink)
            return _SinkIO(sink, self.members)


def iter_py7zr(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    reader = BufferReader(obj.data)
    members: list[Member] = []
    factory: _SinkFactory | None = None
    failure: BaseException | None = None
    try:
        try:
            archive = py7zr.SevenZipFile(cast(IO[bytes], reader), mode="r")
        except PasswordRequired as exc:
            yield Member("<7z headers>", b"", 0, problem=f"encrypted: {exc or '7z headers'}")
            return
        except _ERRORS as exc:
            raise ContainerError(f"7z: {exc}") from exc
        with archive:
            wanted = {
                str(f.id): f
                for f in archive.files
                if not (f.is_directory or f.is_symlink or f.is_socket or f.is_junction)
            }
            if archive.needs_password():
                for f in wanted.values():
                    budget.add_file()
                    yield Member(
                        member_label(f.filename),
                        b"",
                        f.uncompressed or 0,
                        problem="encrypted: 7z member is password-protected",
                    )
                return
            factory = _SinkFactory(wanted, budget, tmpdir)
            worker = archive.worker
            for f in archive.files:
                key = str(f.id)
                worker.register_filelike(f.id, MemIO(key, factory) if key in wanted else None)
            try:
                worker.extract(archive.fp, None, parallel=False)
            except LimitExceeded as exc:
                failure = exc
            except _ERRORS as exc:
                failure = ContainerError(f"7z: {exc}")
            members = factory.members
        while members:
            yield members.pop(0)
        if failure is not None:
            raise failure
    finally:
        for member in members:
            member.close()
        if factory is not None:
            for sink in factory.sinks:
                sink.discard()
        reader.close()
