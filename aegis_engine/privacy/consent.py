"""Consent: what may leave this machine, for which purpose, as the user chose.

Nothing is sent anywhere unless :meth:`ConsentStore.require` allows the purpose. Purposes
are data (:data:`PURPOSES`): an id, a title in plain words, exactly what would be sent, and
whether it is on before the user has chosen. Every purpose is off by default except update
checks, which carry no identifier (the one default-on exception; it can be turned off).

The store is one small JSON file under ``AegisPaths.config_dir`` (``consent.json``), written
with :func:`aegis_engine.atomic.atomic_write` and re-read when it changes, so that the CLI
and the tray app share it: a ``revoke`` in a terminal applies to the running tray app at its
next :meth:`~ConsentStore.require`. A damaged file fails closed: every purpose reads as off
(update checks included) until the user chooses again.

This module holds no network code.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..atomic import atomic_write, file_lock
from ..bounded_io import load_json_file
from ..errors import AegisError, ConsentRequired, ConsentStoreError, UnknownPurpose
from ..paths import AegisPaths

try:  # POSIX: serialize read-modify-write between processes (CLI and tray app)
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "CONSENT_FILE",
    "PURPOSES",
    "ConsentState",
    "ConsentStore",
    "DataField",
    "Purpose",
    "SendPreview",
    "purpose",
]

CONSENT_FILE = "consent.json"
FORMAT = 1
_MAX_CONSENT = 256 * 1024
Warn = Callable[[str], None]


@dataclass(frozen=True)
class DataField:
    """One piece of data a purpose would send, described exactly."""

    name: str
    description: str
    example: str
    """What the value looks like (a real local value where it identifies nobody)."""


@dataclass(frozen=True)
class Purpose:
    """A reason Aegis might send something off this machine."""

    id: str
    title: str
    """Plain words, e.g. ``Cloud hash lookups``."""
    summary: str
    """One sentence on what it is for and when it would happen."""
    sends: tuple[DataField, ...]
    """Exactly what would be sent, field by field."""
    never_sends: str
    """What is explicitly not sent."""
    default: bool = False
    """On before the user has chosen. Only purposes without any identifier may be True."""
    identifiers: bool = False
    """True when what is sent could single out this machine or its user."""

    def describe_data(self) -> str:
        return "; ".join(f"{f.name}: {f.description}" for f in self.sends)


def _aegis_version() -> str:
    try:
        return importlib.metadata.version("aegis")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "unknown"


def _os_family() -> str:
    return platform.system() or sys.platform


DEFAULTS_SENTENCE = (
    "Update checks are on by default: they send only the Aegis version and the signature "
    "version, no identifier. Everything else is off until you turn it on."
)
"""The one true sentence about defaults, shown by the consent dialog, ``aegis consent list``
and the README."""

_VERSION_FIELD = DataField("aegis_version", "the Aegis version", _aegis_version())
_OS_FIELD = DataField("os", "the operating system family", _os_family())

PURPOSES: tuple[Purpose, ...] = (
    # The one purpose on by default comes first, so it is seen without scrolling.
    Purpose(
        id="update-checks",
        title="Check for signature and program updates",
        summary="Ask the update server whether newer signatures or a newer Aegis exist. "
        "On by default because it carries no identifier; you can turn it off.",
        sends=(
            _VERSION_FIELD,
            DataField("signature_version", "the version of the signature set you have", "bundled"),
        ),
        never_sends="any identifier or cookie, anything about your files, your user name",
        default=True,
        identifiers=False,
    ),
    Purpose(
        id="cloud-lookup",
        title="Cloud hash lookups",
        summary="When a file is detected, or is a program, script or document with macros, "
        "ask the reputation service you configured for every known fingerprint that starts "
        "like this file's (k-anonymity: the service never learns which file you have), and "
        "decide here whether it is known good or bad.",
        sends=(
            DataField(
                "prefix",
                "the first 5 of the 64 hexadecimal characters of the file's SHA-256 "
                "fingerprint, shared by about one in a million files; never the whole "
                "fingerprint",
                "275a0",
            ),
        ),
        never_sends="the whole fingerprint, the file itself, its name or folder, your user "
        "name, any machine id",
        identifiers=False,
    ),
    Purpose(
        id="sample-submission",
        title="Send detected samples for analysis",
        summary="Only when you confirm it for one detected file, every time: upload a copy "
        "so that analysts can improve the signatures and fix false alarms. Never automatic.",
        sends=(
            DataField(
                "file",
                "the full content of the detected file (it may contain personal data, "
                "e.g. a document with a macro)",
                "<the detected file's bytes>",
            ),
            DataField("sha256", "its SHA-256 fingerprint", "<64 hexadecimal characters>"),
            DataField("size", "its size in bytes", "68"),
            DataField("detections", "the names of the detections", "EICAR-Test-File, Packed.UPX"),
        ),
        never_sends="the file's name or folder, your user name, any machine id",
        identifiers=False,
    ),
    Purpose(
        id="crash-reports",
        title="Anonymous crash reports",
        summary="When Aegis itself fails with an internal error, report where in the code "
        "it failed (the crash is always written locally; it is queued for sending only "
        "while this is on).",
        sends=(
            _VERSION_FIELD,
            _OS_FIELD,
            DataField("python", "the Python version", platform.python_version()),
            DataField(
                "traceback",
                "the error type and the stack of Aegis functions that failed, with every "
                "file path and message replaced by a placeholder",
                "ValueError at aegis_engine/scanning/walk.py:120 in walk",
            ),
        ),
        never_sends="file contents, file names or paths, your user name, any machine id",
        identifiers=False,
    ),
    Purpose(
        id="usage-stats",
        title="Anonymous usage statistics",
        summary="Counts that show how Aegis is used, to decide what to improve, sent in a "
        "batch at most once a day.",
        sends=(
            _VERSION_FIELD,
            _OS_FIELD,
            DataField(
                "counts",
                "numbers since the last report: files scanned, detections, items "
                "quarantined, scans started, windows opened",
                "files_scanned=51230 detections=1 quarantined=1 scans=3",
            ),
        ),
        never_sends="paths, file names, fingerprints, your user name, any machine id",
        identifiers=False,
    ),
)

_BY_ID: dict[str, Purpose] = {p.id: p for p in PURPOSES}


def purpose(purpose_id: str) -> Purpose:
    """The purpose with this id; :class:`UnknownPurpose` names the valid ones."""
    try:
        return _BY_ID[purpose_id]
    except KeyError:
        known = ", ".join(_BY_ID)
        raise UnknownPurpose(f"unknown purpose {purpose_id!r} (known: {known})") from None


@dataclass(frozen=True)
class ConsentState:
    """One purpose and what the user chose (or the default, if they have not)."""

    purpose: Purpose
    granted: bool
    chosen: bool
    """False while the default applies."""
    changed_at: datetime | None = None
    endpoint: str = ""
    """Where this purpose sends to now (settings); empty when none is configured."""
    endpoint_changed: bool = False
    """Granted for another endpoint than the one configured now: counts as off until the
    user allows it again."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.purpose.id,
            "title": self.purpose.title,
            "granted": self.granted,
            "endpoint": self.endpoint,
            "endpoint_changed": self.endpoint_changed,
            "default": self.purpose.default,
            "chosen": self.chosen,
            "changed_at": _iso(self.changed_at) if self.changed_at else None,
            "identifiers": self.purpose.identifiers,
            "sends": [{"name": f.name, "description": f.description} for f in self.purpose.sends],
            "never_sends": self.purpose.never_sends,
        }


@dataclass(frozen=True)
class SendPreview:
    """What one purpose would send, exactly, and whether it is allowed now."""

    purpose: Purpose
    allowed: bool
    example: Mapping[str, str]
    """Field name -> what its value looks like."""

    def to_text(self) -> str:
        lines = [
            f"{self.purpose.title} ({self.purpose.id}): {'ON' if self.allowed else 'OFF'}",
            self.purpose.summary,
            "",
            "Would send, and nothing else:",
        ]
        for f in self.purpose.sends:
            lines.append(f"  {f.name}: {f.description}")
            lines.append(f"      e.g. {f.example}")
        lines.append(f"Never sends: {self.purpose.never_sends}.")
        if not self.allowed:
            lines.append("Nothing is sent for this purpose while it is off.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.purpose.id,
            "allowed": self.allowed,
            "would_send": dict(self.example),
            "never_sends": self.purpose.never_sends,
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[int, int, int] | None
    choices: Mapping[str, tuple[bool, datetime | None]]
    endpoints: Mapping[str, str]
    reviewed_at: datetime | None
    damaged: bool


class ConsentStore:
    """The user's choices per purpose, in ``path`` (JSON). Thread-safe; shared between
    processes (re-read when the file changes; writes are atomic and serialized by a lock
    file)."""

    def __init__(
        self,
        path: Path,
        *,
        warn: Warn | None = None,
        clock: Callable[[], datetime] = _utcnow,
        endpoints: Callable[[], Mapping[str, str]] | None = None,
        on_revoke: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self._warn = warn
        self._clock = clock
        self._endpoints = endpoints
        """Purpose -> the endpoint it would send to now; a grant holds for that endpoint only."""
        self._on_revoke = on_revoke
        """Called with each purpose that was on and is now off (drops its queued records)."""
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    @classmethod
    def for_paths(cls, paths: AegisPaths, *, warn: Warn | None = None) -> ConsentStore:
        """The profile's store: grants hold for the endpoints in settings ``[cloud]``, and a
        revoke drops the purpose's queued records at once."""
        from .endpoints import endpoints_for
        from .outbox import Outbox

        def on_revoke(purpose_id: str) -> None:
            Outbox.for_paths(paths, warn=warn).drop_purpose(purpose_id)

        return cls(
            paths.config_dir / CONSENT_FILE,
            warn=warn,
            endpoints=lambda: endpoints_for(paths),
            on_revoke=on_revoke,
        )

    def _current_endpoints(self) -> Mapping[str, str]:
        if self._endpoints is None:
            return {}
        try:
            return self._endpoints()
        except AegisError as exc:  # broken settings: no endpoint counts as configured
            if self._warn is not None:
                self._warn(str(exc))
            return {}

    # -- reading -------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConsentStoreError(f"cannot read {self.path}: {exc}") from exc
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> _Snapshot:
        """The file's content; cached until the file changes (lock held)."""
        stamp = self._stamp()
        if self._snapshot is not None and self._snapshot.stamp == stamp:
            return self._snapshot
        snap = _Snapshot(None, {}, {}, None, damaged=False) if stamp is None else self._parse(stamp)
        self._snapshot = snap
        return snap

    def _parse(self, stamp: tuple[int, int, int]) -> _Snapshot:
        try:
            raw = load_json_file(self.path, max_bytes=_MAX_CONSENT)
            if not isinstance(raw, dict) or not isinstance(raw.get("purposes", {}), dict):
                raise ValueError("not a consent file")
        except (OSError, ValueError) as exc:
            if self._warn is not None:
                self._warn(
                    f"the consent file {self.path} is damaged ({exc}); every purpose counts "
                    "as off (update checks too) until you choose again"
                )
            return _Snapshot(stamp, {}, {}, None, damaged=True)
        choices: dict[str, tuple[bool, datetime | None]] = {}
        endpoints: dict[str, str] = {}
        for pid, entry in raw.get("purposes", {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("granted"), bool):
                choices[str(pid)] = (entry["granted"], _parse_time(entry.get("changed_at")))
                if isinstance(entry.get("endpoint"), str):
                    endpoints[str(pid)] = entry["endpoint"]
        return _Snapshot(
            stamp, choices, endpoints, _parse_time(raw.get("reviewed_at")), damaged=False
        )

    def _state(self, snap: _Snapshot, p: Purpose, current: Mapping[str, str]) -> ConsentState:
        endpoint = current.get(p.id, "")
        choice = snap.choices.get(p.id)
        if choice is not None:
            changed = choice[0] and snap.endpoints.get(p.id, "") != endpoint
            return ConsentState(
                p,
                choice[0] and not changed,
                chosen=True,
                changed_at=choice[1],
                endpoint=endpoint,
                endpoint_changed=changed,
            )
        granted = p.default and not snap.damaged
        return ConsentState(p, granted, chosen=False, endpoint=endpoint)

    def state(self, purpose_id: str) -> ConsentState:
        p = purpose(purpose_id)
        current = self._current_endpoints()
        with self._lock:
            return self._state(self._read(), p, current)

    def states(self) -> list[ConsentState]:
        """Every purpose, in the order of :data:`PURPOSES`."""
        current = self._current_endpoints()
        with self._lock:
            snap = self._read()
            return [self._state(snap, p, current) for p in PURPOSES]

    def is_granted(self, purpose_id: str) -> bool:
        return self.state(purpose_id).granted

    def require(self, purpose_id: str) -> None:
        """Return if ``purpose_id`` is allowed now; raise :class:`ConsentRequired` if not.
        Call it right before sending anything, every time."""
        state = self.state(purpose_id)
        if not state.granted:
            if state.endpoint_changed:
                raise ConsentRequired(
                    state.purpose.id,
                    f"{state.purpose.title} was allowed for another endpoint than "
                    f"{state.endpoint or 'none'}, so it",
                )
            raise ConsentRequired(state.purpose.id, state.purpose.title)

    def preview(self, purpose_id: str) -> SendPreview:
        """Exactly what ``purpose_id`` would send (nothing is sent)."""
        state = self.state(purpose_id)
        example = {f.name: f.example for f in state.purpose.sends}
        return SendPreview(state.purpose, state.granted, example)

    @property
    def reviewed(self) -> bool:
        """True once the user has been through the consent choices (first-run dialog, or a
        grant/revoke from the CLI)."""
        with self._lock:
            snap = self._read()
            return snap.reviewed_at is not None and not snap.damaged

    # -- writing -------------------------------------------------------------------------------

    def _process_lock(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.path)

    def _write(self, snap: _Snapshot, reviewed_at: datetime | None) -> None:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "reviewed_at": _iso(reviewed_at) if reviewed_at else None,
            "purposes": {
                pid: {
                    "granted": granted,
                    "changed_at": _iso(when) if when else None,
                    **({"endpoint": snap.endpoints[pid]} if pid in snap.endpoints else {}),
                }
                for pid, (granted, when) in sorted(snap.choices.items())
            },
        }
        try:
            atomic_write(self.path, (json.dumps(doc, indent=2) + "\n").encode())
        except OSError as exc:
            raise ConsentStoreError(f"cannot write {self.path}: {exc}") from exc
        self._snapshot = None

    def set_many(self, choices: Mapping[str, bool], *, reviewed: bool = True) -> None:
        """Record several choices at once (e.g. the first-run dialog's), atomically."""
        for pid in choices:
            purpose(pid)
        now = self._clock()
        current = self._current_endpoints()
        revoked: list[str] = []
        with self._lock, self._process_lock():
            self._snapshot = None
            snap = self._read()
            merged = {} if snap.damaged else dict(snap.choices)
            endpoints = {} if snap.damaged else dict(snap.endpoints)
            for pid, granted in choices.items():
                old = merged.get(pid)
                was_on = self._state(snap, purpose(pid), current).granted
                if granted:  # a grant holds for the endpoint the user sees now
                    endpoints[pid] = current.get(pid, "")
                elif was_on or (old is not None and old[0]):
                    revoked.append(pid)
                if old is None or old[0] != granted or (granted and not was_on):
                    merged[pid] = (bool(granted), now)
            reviewed_at = now if reviewed else snap.reviewed_at
            if snap.damaged and not reviewed:
                reviewed_at = None
            self._write(_Snapshot(None, merged, endpoints, reviewed_at, False), reviewed_at)
        if self._on_revoke is not None:
            for pid in revoked:
                self._on_revoke(pid)

    def set(self, purpose_id: str, granted: bool) -> None:
        self.set_many({purpose_id: granted})

    def grant(self, purpose_id: str) -> None:
        self.set(purpose_id, True)

    def revoke(self, purpose_id: str) -> None:
        self.set(purpose_id, False)

    def mark_reviewed(self) -> None:
        """The user has seen the choices and kept them as they are."""
        self.set_many({}, reviewed=True)
