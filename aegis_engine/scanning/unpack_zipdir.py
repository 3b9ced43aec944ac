"""The ZIP central directory, read lazily, one entry at a time.

zipfile.ZipFile parses the whole central directory up front into one object per entry
(about 400 bytes each): a 100 MB archive of bare central-directory records would cost about a
gigabyte. This reader follows the same rules as zipfile (end record search, ZIP64 records and
extra fields, data prepended to the archive) but yields entries as it goes, so the caller can
stop at a limit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ContainerError
from .unpack_io import BufferReader

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL = b"PK\x01\x02"
_CENTRAL_SIZE = 46
_LOCAL = b"PK\x03\x04"
_LOCAL_SIZE = 30
_MAX_COMMENT = 0xFFFF


@dataclass(slots=True)
class ZipEntry:
    index: int
    name: str
    flags: int
    method: int
    crc: int
    compress_size: int
    file_size: int
    create_system: int
    external_attr: int
    header_offset: int
    data_offset: int | None = None
    """Where the compressed data starts (None when the local header is bad)."""
    end: int = 0
    """End of the compressed data (a lower bound when the local header is bad)."""

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(slots=True)
class _Directory:
    entries: int
    size: int
    start: int
    concat: int


def _find_directory(reader: BufferReader) -> _Directory:
    total = len(reader)
    tail_start = max(0, total - _EOCD_SIZE - _MAX_COMMENT)
    tail = reader.pread(tail_start, total - tail_start)
    at = _end_record(tail)
    if at < 0:
        raise ContainerError("zip: no end of central directory record (truncated?)")
    eocd_offset = tail_start + at
    fields = struct.unpack_from("<4s4H2LH", tail, at)
    disk, cd_disk, entries, size, offset = fields[1], fields[2], fields[4], fields[5], fields[6]
    trailer = _EOCD_SIZE
    locator = reader.pread(eocd_offset - _ZIP64_LOCATOR_SIZE, _ZIP64_LOCATOR_SIZE)
    if eocd_offset >= _ZIP64_LOCATOR_SIZE and locator.startswith(_ZIP64_LOCATOR):
        _, z_disk, _, disks = struct.unpack("<4sLQL", locator)
        if z_disk != 0 or disks > 1:
            raise ContainerError("zip: archives spanning several disks are not supported")
        record_at = eocd_offset - _ZIP64_LOCATOR_SIZE - _ZIP64_EOCD_SIZE
        record = reader.pread(record_at, _ZIP64_EOCD_SIZE) if record_at >= 0 else b""
        if len(record) != _ZIP64_EOCD_SIZE or not record.startswith(_ZIP64_EOCD):
            raise ContainerError("zip: ZIP64 end of central directory record not found")
        z = struct.unpack("<4sQ2H2L4Q", record)
        disk, cd_disk, entries, size, offset = z[4], z[5], z[7], z[8], z[9]
        trailer += _ZIP64_LOCATOR_SIZE + _ZIP64_EOCD_SIZE
    if disk != 0 or cd_disk != 0:
        raise ContainerError("zip: archives spanning several disks are not supported")
    # Data prepended to the archive (self-extractors) shifts every offset by ``concat``.
    concat = eocd_offset + _EOCD_SIZE - trailer - size - offset
    start = offset + concat
    if start < 0 or start + size > total:
        raise ContainerError("zip: bad central directory offset or size")
    return _Directory(entries, size, start, concat)


def _end_record(tail: bytes) -> int:
    """Offset of the end record in ``tail``: the last one whose comment ends the file exactly
    (so an end-record signature inside the comment is not taken), else the last one."""
    last = -1
    at = len(tail)
    while (at := tail.rfind(_EOCD, 0, at)) >= 0:
        if len(tail) - at >= _EOCD_SIZE:
            (comment_len,) = struct.unpack_from("<H", tail, at + 20)
            if at + _EOCD_SIZE + comment_len == len(tail):
                return at
            if last < 0:
                last = at
    return last


def declared_entries(reader: BufferReader) -> int:
    """The entry count the end record declares (raises ContainerError when there is none)."""
    return _find_directory(reader).entries


def iter_entries(reader: BufferReader) -> Iterator[ZipEntry]:
    """Central directory entries in stored order, with the local header already located."""
    directory = _find_directory(reader)
    pos, stop = directory.start, directory.start + directory.size
    index = 0
    while pos + _CENTRAL_SIZE <= stop:
        record = reader.pread(pos, _CENTRAL_SIZE)
        if not record.startswith(_CENTRAL):
            raise ContainerError(f"zip: bad central directory entry at offset {pos}")
        f = struct.unpack("<4s4B4H3L5H2L", record)
        create_system, flags, method = f[2], f[5], f[6]
        crc, csize, usize = f[9], f[10], f[11]
        name_len, extra_len, comment_len = f[12], f[13], f[14]
        external_attr, header_offset = f[17], f[18]
        raw_name = reader.pread(pos + _CENTRAL_SIZE, name_len)
        extra = reader.pread(pos + _CENTRAL_SIZE + name_len, extra_len)
        if len(raw_name) != name_len or len(extra) != extra_len:
            raise ContainerError("zip: central directory is truncated")
        usize, csize, header_offset = _zip64_sizes(extra, usize, csize, header_offset)
        encoding = "utf-8" if flags & 0x800 else "cp437"
        entry = ZipEntry(
            index=index,
            name=raw_name.decode(encoding, "backslashreplace").split("\x00", 1)[0],
            flags=flags,
            method=method,
            crc=crc,
            compress_size=csize,
            file_size=usize,
            create_system=create_system,
            external_attr=external_attr,
            header_offset=header_offset + directory.concat,
        )
        _locate_data(reader, entry)
        yield entry
        index += 1
        pos += _CENTRAL_SIZE + name_len + extra_len + comment_len


def _zip64_sizes(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Apply a ZIP64 extra field: 8-byte values for the 32-bit fields that are all ones."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:
            data = extra[pos + 4 : pos + 4 + size]
            values = [v for (v,) in struct.iter_unpack("<Q", data[: len(data) // 8 * 8])]
            fields = [usize, csize, offset]
            for i, value in enumerate(fields):
                if value == 0xFFFFFFFF:
                    if not values:
                        raise ContainerError("zip: corrupt ZIP64 extra field")
                    fields[i] = values.pop(0)
            return fields[0], fields[1], fields[2]
        pos += 4 + size
    return usize, csize, offset


def _locate_data(reader: BufferReader, entry: ZipEntry) -> None:
    header = reader.pread(entry.header_offset, _LOCAL_SIZE)
    if len(header) == _LOCAL_SIZE and header.startswith(_LOCAL):
        name_len, extra_len = struct.unpack_from("<HH", header, 26)
        entry.data_offset = entry.header_offset + _LOCAL_SIZE + name_len + extra_len
        entry.end = entry.data_offset + entry.compress_size
    else:
        entry.end = entry.header_offset + _LOCAL_SIZE + entry.compress_size
