"""Strip the debug symbols off the bundle's shared libraries, keeping any library that
stripping would break.

PyInstaller's own ``strip`` broke numpy: its OpenBLAS (``numpy.libs/``) was rewritten by
auditwheel's patchelf with a LOAD segment whose file offset and address disagree modulo the
page size once ``strip`` has moved it, and the loader refuses it ("ELF load command
address/offset not page-aligned"): the bundle lost ML detection. Here every ELF library is
stripped into a copy, the copy's LOAD segments are checked (offset = address modulo their
alignment, as the loader demands), and only a sound copy replaces the original.

    python3 packaging/linux/strip_bundle.py dist/aegis
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

PT_LOAD = 1


def is_elf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"\x7fELF"


def loads_aligned(path: Path) -> bool:
    """Every LOAD segment's file offset and address agree modulo its alignment (ELF64 LE)."""
    data = path.read_bytes()
    if data[4] != 2 or data[5] != 1:  # not ELF64 little-endian: leave it unstripped
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, _filesz, _memsz, align = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize
        )
        if p_type == PT_LOAD and align > 1 and offset % align != vaddr % align:
            return False
    return True


def main(bundle: Path) -> int:
    strip = shutil.which("strip")
    if strip is None:
        print("strip_bundle: no strip (binutils): the libraries keep their symbols")
        return 0
    before = after = 0
    kept: list[str] = []
    for dirpath, _dirs, files in os.walk(bundle / "_internal"):
        for name in files:
            path = Path(dirpath, name)
            if path.is_symlink() or ".so" not in name or not is_elf(path):
                continue
            size = path.stat().st_size
            before += size
            tmp = path.with_name(name + ".stripped")
            done = subprocess.run(
                [strip, "--strip-unneeded", "-o", str(tmp), str(path)],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0 and loads_aligned(tmp):
                os.chmod(tmp, path.stat().st_mode)
                os.replace(tmp, path)
                after += tmp.stat().st_size if tmp.exists() else path.stat().st_size
            else:
                tmp.unlink(missing_ok=True)
                kept.append(str(path.relative_to(bundle)))
                after += size
    print(f"strip_bundle: libraries {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB")
    for k in kept:
        print(f"strip_bundle: kept unstripped (stripping would break it): {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
