"""The distribution ships every package of the source tree (a forgotten one would only show
up in a non-editable install)."""

from __future__ import annotations

import tomllib
from pathlib import Path

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
