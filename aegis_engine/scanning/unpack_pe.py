"""PE files as containers: what installers and self-extractors keep after the last section
(the overlay), and what runtime packers unpack (UPX natively, see unpack_upx; others by
emulation, see unpack_packer). Only the headers and
a few bytes at the overlay are read, so a PE that holds nothing costs O(1):

- NSIS installers (``NullsoftInst`` at a 512-byte boundary of the overlay): through 7zz
  (see unpack_7zz);
- InstallShield self-extractors (``name\\0path\\0version\\0size\\0`` records followed by the
  stored files, as ClamAV's ``ishield`` reader reads them), and the InstallShield cabinets
  among them through ``unshield`` (see unpack_unshield);
- InstallShield MSI setups (``InstallShield\0`` header after the debug data): each stored
  file is un-obfuscated (nibble swap, XOR with a key made from its name, the scheme ClamAV
  documents) and inflated within the budget;
- AutoIt v3 compiled scripts kept in the overlay (``AU3!EA05``/``AU3!EA06``) through
  ``autoit-ripper``: the script source and the files it installs (``FileInstall``);
- any other overlay that starts with a known container magic (zip, cab, 7z, rar, OLE2, ...):
  yielded as one member, ``overlay``, which the scanner sniffs and opens.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

from ..detectors.base import Buffer, ScanObject
from ..errors import ContainerError
from . import unpack_packer
from .budget import ExtractionBudget, Member
from .sniff import is_container, sniff
from .unpack_7zz import iter_7zz
from .unpack_io import CHUNK, MemberSink, member_from_bytes, member_label
from .unpack_packer import iter_unpacked, packer_of
from .unpack_unshield import iter_unshield, volume_name
from .unpack_upx import unpack_upx

_NSIS_SIG = b"\xef\xbe\xad\xdeNullsoftInst"
_AUTOIT_MARK = bytes.fromhex("a3484bbe986c4aa9994c530a86d6487d") + b"AU3!EA0"
_AUTOIT_PROBE = 256
"""Bytes at the start of the overlay where the AutoIt marker is looked for."""
_NSIS_PROBES = 8
"""512-byte boundaries of the overlay looked at for the NSIS header."""
_IS_FIELD_MAX = 1024
_IS_MAX_RECORDS = 10_000
_SNIFF = 36 * 1024


def overlay_offset(data: Buffer) -> int | None:
    """Where the data after the last section starts, or None (not a PE, or no overlay)."""
    size = len(data)
    if size < 0x40 or bytes(data[:2]) != b"MZ":
        return None
    (lfanew,) = struct.unpack_from("<I", data, 0x3C)
    if lfanew + 24 > size or bytes(data[lfanew : lfanew + 4]) != b"PE\x00\x00":
        return None
    (count,) = struct.unpack_from("<H", data, lfanew + 6)
    (opt_size,) = struct.unpack_from("<H", data, lfanew + 20)
    table = lfanew + 24 + opt_size
    end = 0
    for i in range(min(count, 96)):
        entry = table + 40 * i
        if entry + 40 > size:
            return None
        raw_size, raw_ptr = struct.unpack_from("<II", data, entry + 16)
        if raw_size:
            end = max(end, raw_ptr + raw_size)
    return end if 0 < end < size else None


def iter_pe(obj: ScanObject, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    data = obj.data
    start = overlay_offset(data)
    if start is not None:
        installer = yield from _overlay(data, start, budget, tmpdir)
        if installer:
            return  # the stub of an installer or script runner: its payload is what matters
    if obj.name.startswith("unpacked-"):
        return  # an emulator's dump keeps the packer's section names: never emulated again
    packer = packer_of(data) if bytes(data[:2]) == b"MZ" else None
    if packer == "upx":
        unpacked = unpack_upx(data, budget, tmpdir)
        if unpacked is not None:
            yield unpacked
            return
    if packer is not None and unpack_packer.available():
        yield from iter_unpacked(data, packer, budget, tmpdir)


def _overlay(
    data: Buffer, start: int, budget: ExtractionBudget, tmpdir: Path
) -> Generator[Member, None, bool]:
    """Members of the overlay; True when it held an installer's or a script's payload."""
    if _is_nsis(data, start):
        yield from iter_7zz(data, "nsis", budget, tmpdir, label="nsis")
        return True
    if _AUTOIT_MARK in bytes(data[start : start + _AUTOIT_PROBE]):
        yield from _autoit(data, start, budget, tmpdir)
        return True
    msi_header = _installshield_msi_header(data, start)
    if msi_header is not None:
        yield from _installshield_msi(data, msi_header, budget, tmpdir)
        return True
    records = list(_installshield_records(data, start))
    if records:
        volumes: dict[str, Buffer] = {}
        for name, offset, length in records:
            budget.check_time()
            budget.add_file()
            content = bytes(data[offset : offset + length])
            volume = volume_name(name)
            if volume is not None:
                volumes[volume] = content
            yield member_from_bytes(name, content, budget, tmpdir)
        if any(v.endswith(".hdr") for v in volumes):
            yield from iter_unshield(volumes, budget, tmpdir)
        return True
    head = bytes(data[start : start + _SNIFF])
    kind = sniff(head)
    if is_container(kind) and kind not in ("PE", "HTML", "MAIL", "BINHEX"):
        budget.add_file()
        yield member_from_bytes("overlay", bytes(data[start:]), budget, tmpdir)
        return True
    return False


def _autoit(data: Buffer, start: int, budget: ExtractionBudget, tmpdir: Path) -> Iterator[Member]:
    """The script and installed files of an AutoIt v3 executable (autoit-ripper caps each
    decompressed file at 10 MB; its pure-Python decoder is not interrupted by max-scan-time,
    which is checked between files)."""
    try:
        from autoit_ripper import extract
    except ImportError:
        yield Member("<autoit>", b"", 0, problem="cannot open: autoit-ripper is not installed")
        return
    logging.getLogger("autoit_ripper").setLevel(logging.CRITICAL)  # damage: quietly nothing
    budget.check_time()
    try:
        found = extract(bytes(data[start:])) or []
    except Exception as exc:
        raise ContainerError(f"autoit: cannot unpack ({type(exc).__name__}: {exc})") from exc
    for name, content in found:
        budget.check_time()
        budget.add_file()
        yield member_from_bytes(member_label(name), bytes(content), budget, tmpdir)


_ISMSI_MARK = b"InstallShield\x00"
_ISMSI_PROBE = 4096
_ISMSI_ENTRY = 0x138
_ISMSI_SKEY = b"\xec\xca\x79\xf8"
_ISMSI_BLOCK = 1024
_NIBBLE_SWAP = bytes(((c << 4) | (c >> 4)) & 0xFF for c in range(256))


def _installshield_msi_header(data: Buffer, start: int) -> int | None:
    """Offset of the first file entry of an InstallShield MSI setup's overlay, or None."""
    probe = bytes(data[start : start + _ISMSI_PROBE])
    at = probe.find(_ISMSI_MARK)
    if at < 0:
        return None
    header = probe[at + len(_ISMSI_MARK) : at + len(_ISMSI_MARK) + 0x20]
    if len(header) < 0x20 or not 0 < struct.unpack_from("<I", header)[0] < 100_000:
        return None
    if any(header[4:]):
        return None
    return start + at + len(_ISMSI_MARK)


def _installshield_msi(
    data: Buffer, header: int, budget: ExtractionBudget, tmpdir: Path
) -> Iterator[Member]:
    (count,) = struct.unpack_from("<I", data, header)
    pos = header + 0x20
    size = len(data)
    for _ in range(count):
        budget.check_time()
        if pos + _ISMSI_ENTRY > size:
            raise ContainerError("installshield msi: truncated file entry")
        raw_name = bytes(data[pos : pos + 260]).split(b"\x00", 1)[0]
        (csize,) = struct.unpack_from("<Q", data, pos + 260 + 8)
        pos += _ISMSI_ENTRY
        if not raw_name or pos + csize > size:
            raise ContainerError("installshield msi: file entry outside the file")
        budget.add_file()
        key = bytes(c ^ _ISMSI_SKEY[i & 3] for i, c in enumerate(raw_name))
        stream = bytes(key[i % len(key)] for i in range(_ISMSI_BLOCK))
        with MemberSink(member_label(raw_name), budget, tmpdir, charge=True) as sink:
            inflater = zlib.decompressobj()
            try:
                for block in range(pos, pos + csize, _ISMSI_BLOCK):
                    chunk = bytes(data[block : min(block + _ISMSI_BLOCK, pos + csize)])
                    plain = _xor(chunk.translate(_NIBBLE_SWAP), stream)
                    out = inflater.decompress(plain, CHUNK)
                    while out:
                        if not sink.write(out):
                            break
                        out = inflater.decompress(inflater.unconsumed_tail, CHUNK)
                    if inflater.eof or sink.too_big:
                        break
            except zlib.error:
                pass  # what was inflated so far is scanned
            yield sink.member()
        pos += csize


def _xor(chunk: bytes, stream: bytes) -> bytes:
    n = len(chunk)
    value = int.from_bytes(chunk, "little") ^ int.from_bytes(stream[:n], "little")
    return value.to_bytes(n, "little")


def _is_nsis(data: Buffer, start: int) -> bool:
    first = (start + 511) // 512 * 512
    for probe in range(first, first + 512 * _NSIS_PROBES, 512):
        if bytes(data[probe + 4 : probe + 4 + len(_NSIS_SIG)]) == _NSIS_SIG:
            return True
    return False


def _installshield_records(data: Buffer, pos: int) -> Iterator[tuple[str, int, int]]:
    """(name, offset, size) of the files an InstallShield self-extractor stores raw."""
    size = len(data)
    for _ in range(_IS_MAX_RECORDS):
        fields = []
        cursor = pos
        for _field in range(4):
            chunk = bytes(data[cursor : cursor + _IS_FIELD_MAX])
            end = chunk.find(b"\x00")
            if end <= 0 or any(c < 32 or c > 126 for c in chunk[:end]):
                return
            fields.append(chunk[:end])
            cursor += end + 1
        if not fields[3].isdigit():
            return
        length = int(fields[3])
        if cursor + length > size:
            return
        yield member_label(fields[1].decode("ascii")), cursor, length
        pos = cursor + length
        if pos >= size:
            return
