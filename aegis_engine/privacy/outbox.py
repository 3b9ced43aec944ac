"""The outbox: records waiting to be sent, in one JSON file the user can read.

Every record in it was built by :func:`~aegis_engine.privacy.allowlist.build_record` (so it
is allowlisted and redacted) before it was queued. The outbox is bounded
(:data:`MAX_PER_PURPOSE` records per purpose, the oldest dropped first), records older than
:data:`MAX_AGE` are dropped unsent, and :meth:`Outbox.drop_purpose` (called when a purpose is
revoked) removes a purpose's records at once. Records of a purpose that is not granted are
also dropped whenever the outbox is read with a consent store, so a revoke made by another
process applies even if its hook did not run. A damaged file is set aside (renamed
``outbox.json.corrupt-<time>``) with a warning, and the outbox starts empty: it never stops
Aegis.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from ..atomic import atomic_write, file_lock
from ..errors import PrivacyError
from ..paths import AegisPaths

__all__ = ["MAX_AGE", "MAX_PER_PURPOSE", "OUTBOX_FILE", "Outbox", "QueuedRecord"]

OUTBOX_FILE = "outbox.json"
MAX_PER_PURPOSE = 500
MAX_AGE = timedelta(days=30)
FORMAT = 1
Warn = Callable[[str], None]


class _Consent(Protocol):
    def is_granted(self, purpose_id: str) -> bool: ...


@dataclass(frozen=True)
class QueuedRecord:
    id: str
    purpose: str
    queued_at: datetime
    """Rounded down to the hour (it is part of what is sent)."""
    record: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "purpose": self.purpose,
            "queued_at": _iso(self.queued_at),
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, raw: Any) -> QueuedRecord:
        if not isinstance(raw, dict):
            raise ValueError("record is not an object")
        rid, purpose, when, record = (raw.get(k) for k in ("id", "purpose", "queued_at", "record"))
        if not isinstance(rid, str) or not isinstance(purpose, str) or not isinstance(record, dict):
            raise ValueError("record lacks id, purpose or content")
        if not isinstance(when, str):
            raise ValueError("record lacks its time")
        return cls(rid, purpose, datetime.fromisoformat(when.replace("Z", "+00:00")), record)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """Queued records per purpose in ``path``; thread- and process-safe (a lock file)."""

    def __init__(
        self,
        path: Path,
        *,
        warn: Warn | None = None,
        clock: Callable[[], datetime] = _utcnow,
        max_per_purpose: int = MAX_PER_PURPOSE,
        max_age: timedelta = MAX_AGE,
    ) -> None:
        self.path = path
        self._warn = warn
        self._clock = clock
        self.max_per_purpose = max_per_purpose
        self.max_age = max_age
        self._lock = threading.Lock()

    @classmethod
    def for_paths(cls, paths: AegisPaths, *, warn: Warn | None = None) -> Outbox:
        return cls(paths.state_dir / OUTBOX_FILE, warn=warn)

    # -- file ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock, file_lock(self.path):
            yield

    def _load(self) -> list[QueuedRecord]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PrivacyError(f"cannot read the outbox {self.path}: {exc}") from exc
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or not isinstance(raw.get("records"), list):
                raise ValueError("not an outbox file")
            return [QueuedRecord.from_dict(r) for r in raw["records"]]
        except (ValueError, TypeError) as exc:
            self._set_aside(exc)
            return []

    def _set_aside(self, exc: Exception) -> None:
        stamp = self._clock().strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
            where = f"set aside as {aside}"
        except OSError as err:
            where = f"could not be set aside ({err})"
        if self._warn is not None:
            self._warn(
                f"the outbox {self.path} was damaged ({exc}); it was {where} and the outbox "
                "starts empty (nothing in it was sent)"
            )

    def _save(self, records: Sequence[QueuedRecord]) -> None:
        doc = {"format": FORMAT, "records": [r.to_dict() for r in records]}
        try:
            atomic_write(self.path, (json.dumps(doc, indent=1) + "\n").encode())
        except OSError as exc:
            raise PrivacyError(f"cannot write the outbox {self.path}: {exc}") from exc

    def _prune(self, records: list[QueuedRecord], consent: _Consent | None) -> list[QueuedRecord]:
        cutoff = self._clock() - self.max_age
        kept = [r for r in records if r.queued_at >= cutoff]
        if consent is not None:
            granted = {p: consent.is_granted(p) for p in {r.purpose for r in kept}}
            kept = [r for r in kept if granted[r.purpose]]
        by_purpose: dict[str, int] = {}
        out: list[QueuedRecord] = []
        for r in reversed(kept):  # newest first: the oldest go when a purpose is over its bound
            n = by_purpose.get(r.purpose, 0)
            if n < self.max_per_purpose:
                out.append(r)
                by_purpose[r.purpose] = n + 1
        out.reverse()
        return out

    def _update(
        self, change: Callable[[list[QueuedRecord]], list[QueuedRecord]], consent: _Consent | None
    ) -> list[QueuedRecord]:
        if not self.path.exists():  # nothing queued: reading must not create files
            result = self._prune(change([]), consent)
            if not result:
                return result
        with self._locked():
            before = self._load()
            after = self._prune(change(list(before)), consent)
            if after != before:
                self._save(after)
            return after

    # -- API -----------------------------------------------------------------------------------

    def add(self, purpose_id: str, record: dict[str, Any]) -> QueuedRecord:
        """Queue ``record`` (already allowlisted and redacted) for ``purpose_id``."""
        from .redact import coarse_time

        queued = QueuedRecord(secrets.token_hex(8), purpose_id, coarse_time(self._clock()), record)
        self._update(lambda rs: [*rs, queued], None)
        return queued

    def pending(
        self, purpose_id: str | None = None, *, consent: _Consent | None = None
    ) -> list[QueuedRecord]:
        """Queued records (of one purpose, or all), oldest first; expired ones, and with
        ``consent`` those of purposes not granted, are dropped first."""
        records = self._update(lambda rs: rs, consent)
        return [r for r in records if purpose_id is None or r.purpose == purpose_id]

    def remove(self, ids: Sequence[str]) -> None:
        """Forget records that were sent."""
        gone = set(ids)
        self._update(lambda rs: [r for r in rs if r.id not in gone], None)

    def drop_purpose(self, purpose_id: str) -> int:
        """Drop every queued record of ``purpose_id`` (the purpose was revoked)."""
        counted: list[int] = []

        def change(rs: list[QueuedRecord]) -> list[QueuedRecord]:
            kept = [r for r in rs if r.purpose != purpose_id]
            counted.append(len(rs) - len(kept))
            return kept

        self._update(change, None)
        return counted[0] if counted else 0
