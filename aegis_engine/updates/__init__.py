"""Signed content updates: TUF metadata, sealed content-addressed blobs, bsdiff4/zstd deltas.

See ``docs/updates.md``. Entry points: :func:`check_for_updates`, :func:`rollback`,
:func:`content_status`.
"""

from __future__ import annotations

from .client import UpdateResult
from .service import ContentStatus, check_for_updates, content_status, rollback

__all__ = ["ContentStatus", "UpdateResult", "check_for_updates", "content_status", "rollback"]
