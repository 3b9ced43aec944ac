"""The sent log: a local record of everything that left this machine.

One JSON line per request: when, for which purpose, to which endpoint, how many bytes, and
the payload itself (as sent, decompressed; a sample's file content is summarised by its
size and SHA-256, which the log line already shows). Bounded to :data:`MAX_ENTRIES` lines.
``aegis privacy sent`` and the tray app's Privacy settings read it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..paths import AegisPaths

__all__ = ["MAX_ENTRIES", "SENT_LOG_FILE", "SentEntry", "SentLog"]

SENT_LOG_FILE = "sent-log.jsonl"
MAX_ENTRIES = 1000


@dataclass(frozen=True)
class SentEntry:
    time: str
    purpose: str
    method: str
    endpoint: str
    bytes: int
    status: int
    payload: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "purpose": self.purpose,
            "method": self.method,
            "endpoint": self.endpoint,
            "bytes": self.bytes,
            "status": self.status,
            "payload": self.payload,
        }


class SentLog:
    def __init__(self, path: Path, *, max_entries: int = MAX_ENTRIES) -> None:
        self.path = path
        self.max_entries = max_entries
        self._lock = threading.Lock()

    @classmethod
    def for_paths(cls, paths: AegisPaths) -> SentLog:
        return cls(paths.data_dir / SENT_LOG_FILE)

    def record(
        self,
        purpose_id: str,
        method: str,
        endpoint: str,
        nbytes: int,
        status: int,
        payload: Any,
    ) -> SentEntry:
        entry = SentEntry(
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            purpose_id,
            method,
            endpoint,
            nbytes,
            status,
            payload,
        )
        line = json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            self._trim()
        return entry

    def _trim(self) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return
        if len(lines) > self.max_entries:
            keep = lines[-self.max_entries :]
            atomic_write(self.path, ("\n".join(keep) + "\n").encode())

    def entries(self) -> list[SentEntry]:
        """Every logged request, oldest first (unreadable lines are skipped)."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        out: list[SentEntry] = []
        for line in lines:
            try:
                raw = json.loads(line)
                out.append(
                    SentEntry(
                        str(raw["time"]),
                        str(raw["purpose"]),
                        str(raw.get("method", "")),
                        str(raw["endpoint"]),
                        int(raw["bytes"]),
                        int(raw.get("status", 0)),
                        raw.get("payload"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
        return out
