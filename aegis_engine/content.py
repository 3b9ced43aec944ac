"""Where signature content comes from: the bundled resources (version 0) or the installed
update that replaces them, then the user's own rules and hash lists.

An update is a complete content set: when one is installed (``aegis_engine.updates``), its
files are used instead of the bundled ones, never beside them. :func:`active_content` names
the folder and the version; engines compare :attr:`ContentSources.stamp` before each scan and
reload their detectors when a new version was switched in.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import AegisError
from .paths import AegisPaths

RESOURCES_ENV = "AEGIS_RESOURCES"


def bundled_resources() -> Path:
    """The folder of bundled defaults (``resources/`` in the source tree)."""
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override)
    return Path(str(importlib.resources.files("aegis_resources")))


@dataclass(frozen=True)
class ActiveContent:
    root: Path
    version: int
    """0 for the bundled content."""
    stamp: tuple[int, int] | None
    problem: str | None = None
    """Why an installed update could not be used (the bundled content is used instead)."""


def content_stamp(paths: AegisPaths) -> tuple[int, int] | None:
    """Changes whenever another content version is switched in (cheap: one stat)."""
    from .updates.store import ContentStore

    return ContentStore(paths).stamp()


def active_content(paths: AegisPaths) -> ActiveContent:
    """The content in force: the installed update (unsealed view), else the bundled one. A
    damaged update never leaves the engine without content: it falls back to the bundled."""
    from .updates.store import ContentStore

    store = ContentStore(paths)
    stamp = store.stamp()
    if stamp is None:
        return ActiveContent(bundled_resources(), 0, None)
    try:
        inst = store.current()
        view = store.view()
        if inst is not None and view is not None:
            return ActiveContent(view, inst.version, stamp)
    except (AegisError, OSError, ValueError, KeyError) as exc:
        return ActiveContent(
            bundled_resources(), 0, stamp, f"the installed update cannot be used ({exc})"
        )
    return ActiveContent(bundled_resources(), 0, stamp)


@dataclass(frozen=True)
class ContentSources:
    """Rule folders/files and hash lists to load, in order: bundled, updated, user-given."""

    rule_paths: tuple[Path, ...]
    hash_files: tuple[Path, ...]
    model_dir: Path | None
    version: int = 0
    """The content version in force (0: bundled)."""
    stamp: tuple[int, int] | None = None
    problem: str | None = None

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
        active = active_content(paths) if bundled else None
        roots = [active.root] if active is not None else []
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
        if paths.user_hashes_dir.is_dir():
            hashes.extend(
                sorted(
                    p
                    for p in paths.user_hashes_dir.iterdir()
                    if p.is_file() and not p.name.startswith(".")
                )
            )
        rules.extend(extra_rules)
        hashes.extend(extra_hashes)
        return cls(
            rule_paths=tuple(rules),
            hash_files=tuple(hashes),
            model_dir=model,
            version=active.version if active else 0,
            stamp=active.stamp if active else None,
            problem=active.problem if active else None,
        )
