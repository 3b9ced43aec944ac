"""Where signature content comes from: bundled resources, then updated content, then the user's.

This is the one seam that updates will swap: an update writes a new content folder under
``AegisPaths.content_dir`` and the next engine picks it up here.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from .paths import AegisPaths

RESOURCES_ENV = "AEGIS_RESOURCES"


def bundled_resources() -> Path:
    """The folder of bundled defaults (``resources/`` in the source tree)."""
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("aegis_resources")))


@dataclass(frozen=True)
class ContentSources:
    """Rule folders/files and hash lists to load, in order: bundled, updated, user-given."""

    rule_paths: tuple[Path, ...]
    hash_files: tuple[Path, ...]
    model_dir: Path | None

    @classmethod
    def resolve(
        cls,
        paths: AegisPaths,
        extra_rules: tuple[Path, ...] = (),
        extra_hashes: tuple[Path, ...] = (),
        *,
        bundled: bool = True,
    ) -> ContentSources:
        rules: list[Path] = []
        hashes: list[Path] = []
        model: Path | None = None
        roots = [bundled_resources()] if bundled else []
        if paths.content_dir.is_dir():
            roots.append(paths.content_dir)
        for root in roots:
            if (root / "rules").is_dir():
                rules.append(root / "rules")
            if (root / "hashes").is_dir():
                hashes.extend(
                    sorted(
                        p
                        for p in (root / "hashes").iterdir()
                        if p.is_file() and not p.name.startswith(".")
                    )
                )
            if (root / "model").is_dir():
                model = root / "model"
        rules.extend(extra_rules)
        hashes.extend(extra_hashes)
        return cls(rule_paths=tuple(rules), hash_files=tuple(hashes), model_dir=model)
