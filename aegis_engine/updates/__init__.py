"""Signed content updates: TUF metadata, sealed content-addressed blobs, bsdiff4/zstd deltas.

See ``docs/updates.md``. Entry points: :func:`check_for_updates`, :func:`rollback`,
:func:`content_status`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import UpdateResult
    from .service import ContentStatus, check_for_updates, content_status, rollback

__all__ = ["ContentStatus", "UpdateResult", "check_for_updates", "content_status", "rollback"]


def __getattr__(name: str) -> Any:
    """The entry points, imported when first used: ``updates.store`` (which every engine
    reads for the content in force) must not pull in TUF, requests and cryptography
    (~30 MB in an idle tray app or ``aegis monitor``)."""
    if name == "UpdateResult":
        from .client import UpdateResult

        return UpdateResult
    if name in __all__:
        from . import service

        return getattr(service, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
