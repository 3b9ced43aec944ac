"""Detection history: detections, actions and the user's decisions, in SQLite.

A damaged database is moved aside (``history.sqlite3.corrupt-<time>``), a new one is built,
and ``warn`` says so; the history never stops scanning or quarantine: when it cannot be
written at all (read-only profile, full disk) ``warn`` says so once and the detection is
still reported and acted on. Rows that cannot be understood are skipped when reading, with
one warning. Events export as JSON
lines with Elastic Common Schema fields, for a SIEM (Elastic, Wazuh, Splunk).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from .bounded_io import loads_bounded
from .decision import Decision
from .errors import ConfigError, HistoryError
from .setaside import move_aside

__all__ = [
    "ECS_VERSION",
    "KIND_ACTION",
    "KIND_DECISION",
    "KIND_DETECTION",
    "History",
    "HistoryEvent",
    "parse_since",
]

ECS_VERSION = "8.11.0"
SCHEMA_VERSION = 1
Warn = Callable[[str], None]

KIND_DETECTION = "detection"
KIND_ACTION = "action"
KIND_DECISION = "decision"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_us INTEGER NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    file_path TEXT,
    sha256 TEXT,
    size INTEGER,
    verdict TEXT,
    action TEXT,
    outcome TEXT,
    decision TEXT,
    item_id TEXT,
    rules TEXT NOT NULL DEFAULT '[]',
    detections TEXT NOT NULL DEFAULT '[]',
    explanation TEXT NOT NULL DEFAULT '[]',
    message TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events (time_us);
"""
_COLUMNS = (
    "id, time_us, kind, path, file_path, sha256, size, verdict, action, outcome, decision, "
    "item_id, rules, detections, explanation, message"
)
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def _printable(path: str) -> str:
    """SQLite text cannot hold lone surrogates: show undecodable bytes as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _utcnow() -> datetime:
    return datetime.now(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (SQLite integers hold any year to 9999)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SINCE_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, ``30m``, ``2w``, ``90s`` ago; or a date/time like ``2026-11-01`` or
    ``2026-11-01T08:00`` (local time unless it names a zone)."""
    now = now or _utcnow()
    match = _SINCE_RE.match(text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: expected a date like 2026-11-01, a time like "
            "2026-11-01T08:00, or an age like 7d, 24h, 30m"
        ) from None
    return moment.astimezone(UTC) if moment.tzinfo else moment.astimezone().astimezone(UTC)


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


@dataclass(frozen=True)
class HistoryEvent:
    """One row of the history."""

    id: int
    time: datetime
    kind: str
    """``detection``, ``action`` (something Aegis did) or ``decision`` (something you chose)."""
    path: str
    file_path: str | None = None
    sha256: str | None = None
    size: int | None = None
    verdict: str | None = None
    action: str | None = None
    outcome: str | None = None
    decision: str | None = None
    item_id: str | None = None
    rules: tuple[str, ...] = ()
    detections: tuple[Mapping[str, Any], ...] = ()
    explanation: tuple[str, ...] = ()
    message: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> HistoryEvent:
        """Raises ``ValueError``/``TypeError`` for a row that does not hold what it should."""
        if not isinstance(row[0], int) or not isinstance(row[1], int):
            raise TypeError("id and time must be integers")
        if not isinstance(row[2], str) or not isinstance(row[3], str):
            raise TypeError("kind and path must be text")
        for index in (4, 5, 7, 8, 9, 10, 11, 15):
            if row[index] is not None and not isinstance(row[index], str):
                raise TypeError(f"column {index} must be text")
        if row[6] is not None and not isinstance(row[6], int):
            raise TypeError("size must be an integer")
        lists = [loads_bounded(row[i]) for i in (12, 13, 14)]
        if not all(isinstance(v, list) for v in lists):
            raise TypeError("rules, detections and explanation must be lists")
        if not all(isinstance(v, str) for v in lists[0] + lists[2]):
            raise TypeError("rules and explanation must be lists of text")
        if not all(isinstance(v, dict) for v in lists[1]):
            raise TypeError("detections must be a list of objects")
        return cls(
            id=row[0],
            time=_EPOCH + timedelta(microseconds=row[1]),
            kind=row[2],
            path=row[3],
            file_path=row[4],
            sha256=row[5],
            size=row[6],
            verdict=row[7],
            action=row[8],
            outcome=row[9],
            decision=row[10],
            item_id=row[11],
            rules=tuple(lists[0]),
            detections=tuple(lists[1]),
            explanation=tuple(lists[2]),
            message=row[15],
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "time": _iso(self.time), "kind": self.kind}
        for key in (
            "path",
            "file_path",
            "sha256",
            "size",
            "verdict",
            "action",
            "outcome",
            "decision",
            "item_id",
            "message",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["rules"] = list(self.rules)
        out["detections"] = [dict(d) for d in self.detections]
        out["explanation"] = list(self.explanation)
        return out

    def summary(self) -> str:
        """One line for ``aegis history``."""
        local = self.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        if self.kind == KIND_DETECTION:
            what = f"{self.verdict or '?'}"
            if self.rules:
                what += f" ({', '.join(self.rules)})"
            what += f" -> {self.action or 'none'}"
        elif self.kind == KIND_DECISION:
            what = f"you chose {self.decision}"
        else:
            what = f"{self.action} {self.outcome or ''}".rstrip()
        if self.item_id:
            what += f" [item {self.item_id}]"
        line = f"{local}  {self.kind:<9}  {what}  {self.path}"
        if self.message:
            line += f"  - {self.message}"
        return line

    def to_ecs(self, *, hostname: str | None = None) -> dict[str, Any]:
        """The event as an Elastic Common Schema document (one JSON line of an export)."""
        on_disk = self.file_path or self.path
        event: dict[str, Any] = {
            "kind": "alert" if self.kind == KIND_DETECTION else "event",
            "module": "aegis",
            "dataset": "aegis.history",
            "id": str(self.id),
            "created": _iso(self.time),
        }
        if self.kind == KIND_DETECTION:
            event.update(category=["malware", "file"], type=["info"], action="detection")
            event["outcome"] = "unknown"
        elif self.kind == KIND_DECISION:
            event.update(category=["malware"], type=["info"], action="user-decision")
            event["outcome"] = "success"
        else:
            category, kind = _ACTION_ECS.get(self.action or "", (["malware"], ["info"]))
            event.update(category=category, type=kind, action=self.action or "unknown")
            event["outcome"] = self.outcome if self.outcome in _ECS_OUTCOMES else "unknown"
        if self.explanation:
            event["reason"] = " ".join(self.explanation)
        file: dict[str, Any] = {
            "path": on_disk,
            "name": os.path.basename(on_disk),
            "directory": os.path.dirname(on_disk),
        }
        if self.sha256:
            file["hash"] = {"sha256": self.sha256}
        if self.size is not None:
            file["size"] = self.size
        doc: dict[str, Any] = {
            "@timestamp": _iso(self.time),
            "ecs": {"version": ECS_VERSION},
            "event": event,
            "file": file,
            "observer": {"vendor": "Aegis", "product": "Aegis", "type": "antivirus"},
            "message": self.summary_message(),
        }
        if self.rules:
            doc["rule"] = {"name": self.rules[0] if len(self.rules) == 1 else list(self.rules)}
        if self.kind == KIND_DETECTION and self.sha256:
            doc["threat"] = {
                "indicator": {"type": "file", "file": {"hash": {"sha256": self.sha256}}}
            }
        if hostname:
            doc["host"] = {"hostname": hostname}
        aegis: dict[str, Any] = {"history_kind": self.kind}
        for key in ("verdict", "action", "decision", "item_id"):
            value = getattr(self, key)
            if value is not None:
                aegis[key] = value
        if self.path != on_disk:
            aegis["object_path"] = self.path
        if self.detections:
            aegis["detections"] = [dict(d) for d in self.detections]
        if self.explanation:
            aegis["explanation"] = list(self.explanation)
        doc["aegis"] = aegis
        return doc

    def summary_message(self) -> str:
        if self.kind == KIND_DETECTION:
            rules = f" ({', '.join(self.rules)})" if self.rules else ""
            return f"Aegis: {self.verdict} file{rules}: {self.path}"
        if self.kind == KIND_DECISION:
            return f"Aegis: user chose {self.decision} for {self.path}"
        text = f"Aegis: {self.action} {self.outcome or ''}".rstrip()
        return f"{text}: {self.path}" + (f" ({self.message})" if self.message else "")


_ECS_OUTCOMES = frozenset({"success", "failure", "unknown"})
_ACTION_ECS: dict[str, tuple[list[str], list[str]]] = {
    "quarantine": (["malware", "file"], ["info", "deletion"]),
    "restore": (["file"], ["creation"]),
    "delete": (["file"], ["deletion"]),
    "purge": (["file"], ["deletion"]),
}


class History:
    """The history database at ``path`` (opened on first use; thread-safe).

    ``warn`` is told when a damaged database was moved aside and rebuilt.
    """

    def __init__(self, path: Path, *, warn: Warn, clock: Callable[[], datetime] = _utcnow) -> None:
        self.path = path
        self._warn = warn
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.write_error: str | None = None
        """Why the last record could not be written (None: the last write worked)."""
        self._write_warned = False

    # -- connection ---------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():  # private from the start, and so are -wal and -shm
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")  # readers never block the monitor
            conn.execute("PRAGMA synchronous = NORMAL")
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed: {row}")
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                try:
                    self._conn = self._open()
                except sqlite3.DatabaseError as exc:
                    if not _is_corruption(exc):
                        raise HistoryError(f"cannot open history {self.path}: {exc}") from exc
                    self._rebuild(exc)
                    self._conn = self._open()
            except OSError as exc:
                raise HistoryError(
                    f"cannot open history {self.path}: {exc.strerror or exc}"
                ) from exc
            except sqlite3.Error as exc:
                raise HistoryError(f"cannot open history {self.path}: {exc}") from exc
        return self._conn

    def _rebuild(self, exc: Exception) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        try:
            aside = move_aside(self.path, self._clock())
        except OSError as err:
            raise HistoryError(
                f"the history database {self.path} is damaged ({exc}) and cannot be moved "
                f"aside ({err.strerror or err})"
            ) from err
        self._warn(
            f"the history database {self.path} was damaged ({exc}); it was moved to {aside} "
            "and a new, empty history was started"
        )

    def _run(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                return work(self._connection())
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise HistoryError(f"history {self.path}: {exc}") from exc
                self._rebuild(exc)
                try:
                    return work(self._connection())
                except sqlite3.Error as again:
                    raise HistoryError(f"history {self.path}: {again}") from again
            except sqlite3.Error as exc:
                raise HistoryError(f"history {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------

    def _insert(self, **values: Any) -> int:
        values.setdefault("time_us", _micros(self._clock()))
        values["path"] = _printable(values["path"])
        if values.get("file_path") is not None:
            values["file_path"] = _printable(values["file_path"])
        for key in ("rules", "detections", "explanation"):
            values[key] = json.dumps(list(values.get(key) or ()))
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)

        def work(conn: sqlite3.Connection) -> int:
            with conn:
                cur = conn.execute(
                    f"INSERT INTO events ({columns}) VALUES ({marks})", tuple(values.values())
                )
            return int(cur.lastrowid or 0)

        try:
            result: int = self._run(work)
        except HistoryError as exc:
            # A history that cannot be written never costs a detection: say so (once per
            # History) and go on; the caller still reports and acts on what was found.
            self.write_error = str(exc)
            if not self._write_warned:
                self._write_warned = True
                self._warn(f"{exc}; detections are still reported but not recorded")
            return 0
        self.write_error = None
        return result

    def record_detection(
        self, decision: Decision, *, size: int | None = None, action: str | None = None
    ) -> int:
        """A non-clean verdict with its explanation, and ``action``: what the command that
        found it does about it (default: the policy's action)."""
        return self._insert(
            kind=KIND_DETECTION,
            path=decision.object_path,
            file_path=decision.file_path,
            sha256=decision.sha256,
            size=size,
            verdict=decision.verdict.value,
            action=action or decision.action.value,
            rules=decision.rules,
            detections=[e.to_dict() for e in decision.evidence],
            explanation=decision.explanation,
        )

    def record_action(
        self,
        action: str,
        path: str,
        *,
        outcome: str,
        verdict: str | None = None,
        sha256: str | None = None,
        size: int | None = None,
        item_id: str | None = None,
        message: str | None = None,
        rules: Iterable[str] = (),
        explanation: Iterable[str] = (),
    ) -> int:
        """Something Aegis did: ``quarantine``, ``restore``, ``delete``, ``purge``, ``ask``...
        ``outcome`` is ``success``, ``failure`` or ``unknown`` (e.g. a question pending)."""
        return self._insert(
            kind=KIND_ACTION,
            path=path,
            action=action,
            outcome=outcome,
            verdict=verdict,
            sha256=sha256,
            size=size,
            item_id=item_id,
            message=message,
            rules=list(rules),
            explanation=list(explanation),
        )

    def record_user_decision(
        self,
        decision: str,
        path: str,
        *,
        verdict: str | None = None,
        sha256: str | None = None,
        item_id: str | None = None,
        message: str | None = None,
    ) -> int:
        """Something the user chose: e.g. ``quarantine``, ``keep``, ``restore``, ``delete``."""
        return self._insert(
            kind=KIND_DECISION,
            path=path,
            decision=decision,
            verdict=verdict,
            sha256=sha256,
            item_id=item_id,
            message=message,
        )

    # -- reading ------------------------------------------------------------------------------

    def events(self, *, since: datetime | None = None) -> list[HistoryEvent]:
        """Events in time order, optionally only those at or after ``since``."""
        floor = _micros(since) if since is not None else 0

        def work(conn: sqlite3.Connection) -> list[HistoryEvent]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE time_us >= ? ORDER BY time_us, id",
                (floor,),
            ).fetchall()
            events: list[HistoryEvent] = []
            bad: list[str] = []
            for r in rows:
                try:
                    events.append(HistoryEvent.from_row(r))
                except Exception:  # a damaged row is skipped, never the whole history
                    bad.append(str(r[0]))
            if bad:
                shown = ", ".join(bad[:10]) + (", ..." if len(bad) > 10 else "")
                self._warn(
                    f"{len(bad)} damaged row(s) of the history {self.path} skipped (id {shown})"
                )
            return events

        result: list[HistoryEvent] = self._run(work)
        return result

    def export_ecs(
        self, out: TextIO, *, since: datetime | None = None, hostname: str | None = None
    ) -> int:
        """Write every event as one ECS JSON line; return how many. ``hostname`` is added as
        ``host.hostname`` only when given (the export is the user's own file)."""
        count = 0
        for event in self.events(since=since):
            out.write(json.dumps(event.to_ecs(hostname=hostname), ensure_ascii=False) + "\n")
            count += 1
        return count
