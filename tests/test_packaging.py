"""The distribution ships every package of the source tree (a forgotten one would only show
up in a non-editable install), and the bundle's strip step never breaks a library."""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import struct
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("aegis_engine", "aegis_gui")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert config["package-dir"]["aegis_resources"] == "resources"


def test_bundled_resources_are_found() -> None:
    from aegis_engine.content import bundled_resources

    res = bundled_resources()
    assert (res / "rules").is_dir() and any((res / "rules").glob("*.yar"))
    assert any((res / "hashes").iterdir())
    assert (res / "model" / "manifest.json").is_file()


# -- packaging/linux/strip_bundle.py: stripping never breaks a library ---------------------


def _strip_bundle():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "strip_bundle", ROOT / "packaging" / "linux" / "strip_bundle.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _misalign_last_load(path: Path) -> None:
    """Shift one LOAD segment's file offset off its address modulo the page size: what
    PyInstaller's strip did to numpy's OpenBLAS."""
    data = bytearray(path.read_bytes())
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads = [
        phoff + i * phentsize
        for i in range(phnum)
        if struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 1
    ]
    entry = loads[-1]
    offset = struct.unpack_from("<Q", data, entry + 8)[0]
    struct.pack_into("<Q", data, entry + 8, offset + 0x98)
    path.write_bytes(bytes(data))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF libraries")
def test_alignment_check_agrees_with_the_loader(tmp_path: Path) -> None:
    import _json

    mod = _strip_bundle()
    good, bad = tmp_path / "libgood.so", tmp_path / "libbad.so"
    shutil.copy2(_json.__file__, good)
    shutil.copy2(_json.__file__, bad)
    _misalign_last_load(bad)
    assert mod.loads_aligned(good) and not mod.loads_aligned(bad)
    ctypes.CDLL(str(good))
    with pytest.raises(OSError, match="page-aligned"):
        ctypes.CDLL(str(bad))


@pytest.mark.skipif(shutil.which("strip") is None, reason="no strip (binutils)")
def test_stripped_bundle_libraries_still_load(tmp_path: Path) -> None:
    """numpy's OpenBLAS (patched by auditwheel) is what PyInstaller's strip broke; after
    strip_bundle every library, that one included, still loads."""
    import _json

    import numpy

    blas = sorted((Path(numpy.__file__).parent.parent / "numpy.libs").glob("libscipy_openblas*"))
    if not blas:
        pytest.skip("this numpy has no bundled OpenBLAS")
    lib = tmp_path / "aegis" / "_internal"
    (lib / "numpy.libs").mkdir(parents=True)
    shutil.copy2(blas[0], lib / "numpy.libs" / blas[0].name)
    shutil.copy2(_json.__file__, lib / "libplain.so")
    plain_before = (lib / "libplain.so").stat().st_size
    assert _strip_bundle().main(tmp_path / "aegis") == 0
    ctypes.CDLL(str(lib / "numpy.libs" / blas[0].name))
    ctypes.CDLL(str(lib / "libplain.so"))
    assert (lib / "libplain.so").stat().st_size < plain_before, "symbols stripped"
