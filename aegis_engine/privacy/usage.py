"""Usage statistics (purpose ``usage-stats``): counters kept locally only while the purpose is
on, turned into one report a day in the outbox.

:func:`count` adds to the counters in ``state_dir/usage-counts.json`` (nothing is counted
while the purpose is off). :func:`queue_due_report` moves them into one outbox record (the
usage allowlist: version, OS family, Python version, the listed counters) when the last one
is at least :data:`REPORT_EVERY` old. Nothing here opens a connection.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Mapping
from typing import Any, Protocol

from ..atomic import atomic_write
from ..paths import AegisPaths
from .allowlist import COUNTERS, build_record
from .outbox import Outbox, QueuedRecord
from .redact import Redactor

__all__ = ["REPORT_EVERY", "USAGE_FILE", "count", "queue_due_report"]

PURPOSE = "usage-stats"
USAGE_FILE = "usage-counts.json"
REPORT_EVERY = 24 * 3600.0


class _Consent(Protocol):
    def is_granted(self, purpose_id: str) -> bool: ...


def _read(paths: AegisPaths) -> dict[str, Any]:
    try:
        raw = json.loads((paths.state_dir / USAGE_FILE).read_bytes())
    except (OSError, ValueError):
        return {"counts": {}, "since": time.time()}
    return raw if isinstance(raw, dict) else {"counts": {}, "since": time.time()}


def _write(paths: AegisPaths, doc: Mapping[str, Any]) -> None:
    paths.ensure(paths.state_dir)
    atomic_write(paths.state_dir / USAGE_FILE, json.dumps(doc).encode())


def count(paths: AegisPaths, consent: _Consent, **increments: int) -> None:
    """Add to the usage counters, only while usage statistics are on. Never raises."""
    try:
        if not consent.is_granted(PURPOSE):
            return
        doc = _read(paths)
        counts = doc.setdefault("counts", {})
        for name, n in increments.items():
            if name in COUNTERS and n > 0:
                counts[name] = int(counts.get(name, 0)) + int(n)
        _write(paths, doc)
    except Exception:
        return


def queue_due_report(
    paths: AegisPaths,
    consent: _Consent,
    *,
    now: float | None = None,
    every: float = REPORT_EVERY,
    redactor: Redactor | None = None,
) -> QueuedRecord | None:
    """Queue the counters as one report when one is due; returns it (None when not due)."""
    if not consent.is_granted(PURPOSE):
        return None
    now = time.time() if now is None else now
    doc = _read(paths)
    counts = doc.get("counts") or {}
    since = float(doc.get("since", now))
    if not counts or now - since < every:
        return None
    from .consent import _aegis_version

    record = build_record(
        PURPOSE,
        {
            "aegis_version": _aegis_version(),
            "os": platform.system() or sys.platform,
            "python": platform.python_version(),
            "counts": counts,
        },
        redactor or Redactor.for_this_machine(),
    )
    queued = Outbox.for_paths(paths).add(PURPOSE, record)
    _write(paths, {"counts": {}, "since": now})
    return queued
