"""Small, well-formed PE images with known header values, built here (no binaries in the
repository): the ML feature tests read their values back, the detector tests score them, the
fuzz targets mutate one."""

from __future__ import annotations

import struct

LFANEW = 0x80


def build_pe(
    *,
    lfanew: int = LFANEW,
    nsections: int = 2,
    magic: int = 0x10B,
    opt_size: int | None = None,
    entry: int = 0x1010,
    characteristics: int = 0x0102,
    dll_characteristics: int = 0x8140,
    checksum: int = 0x1234,
    section_blob: bytes | None = None,
) -> bytes:
    """A small but well-formed PE32 (or PE32+) image with known header values."""
    dos = bytearray(0x40)
    struct.pack_into(
        "<2sHHHHHHHHHHHHH", dos, 0, b"MZ", 0x90, 3, 0, 4, 0, 0xFFFF, 0, 0xB8, 0, 0, 0, 0x40, 0
    )
    struct.pack_into("<I", dos, 0x3C, lfanew)
    stub = bytes(lfanew - 0x40)
    wide = magic != 0x10B  # PE32+: no BaseOfData, 64-bit ImageBase and stack/heap sizes
    word = "Q" if wide else "I"
    opt = struct.pack(
        "<HBBIIIII" + ("" if wide else "I") + word + "IIHHHHHHIIIIHH" + word * 4 + "II",
        magic,
        14,
        29,
        0x1000,
        0x800,
        0,
        entry,
        0x1000,
        *(() if wide else (0x2000,)),  # BaseOfData
        0x140000000 if wide else 0x400000,
        0x1000,
        0x200,
        6,
        0,
        1,
        2,
        6,
        0,
        0,
        0x4000,
        0x400,
        checksum,
        3 if wide else 2,
        dll_characteristics,
        0x100000,
        0x1000,
        0x100000,
        0x1000,
        0,
        16,
    )
    opt += bytes(16 * 8)  # data directories
    size = len(opt) if opt_size is None else opt_size
    file_header = struct.pack(
        "<4sHHIIIHH",
        b"PE\0\0",
        0x14C if magic == 0x10B else 0x8664,
        nsections,
        0,
        0,
        0,
        size,
        characteristics,
    )
    if section_blob is None:
        section_blob = b"".join(
            struct.pack(
                "<8sIIIIIIHHI",
                f".s{i}".encode(),
                0x1000,
                0x1000 * (i + 1),
                0x200,
                0x400 + 0x200 * i,
                0,
                0,
                0,
                0,
                0x60000020,
            )
            for i in range(min(nsections, 8))
        )
    image = bytes(dos) + stub + file_header + opt + section_blob
    image += bytes(-len(image) % 0x200) + b"\xcc" * 0x200 * min(nsections, 8)
    return image
