"""Sending what waits in the outbox: usage statistics and crash reports as OTLP/HTTP JSON logs.

:meth:`OutboxSender.flush` sends one purpose's queued records to ``{endpoint}/v1/logs`` in
gzip-compressed batches, and removes a batch from the outbox only after the collector
accepted it (2xx). Anything else (no consent, no endpoint, server down, 429, 5xx) leaves the
outbox as it was; a ``Retry-After`` and the minimum interval between sends
(:data:`MIN_INTERVAL`, per purpose, kept in ``send-state.json``) rate-limit the next try.
Everything accepted is written to the sent log.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..atomic import atomic_write
from ..errors import AegisError, SendFailed
from ..paths import AegisPaths
from .endpoints import CloudSettings
from .otlp import CONTENT_TYPE, batches, encode_logs, gzip_body, logs_url
from .outbox import Outbox, QueuedRecord
from .sentlog import SentLog
from .transport import Transport

__all__ = ["MIN_INTERVAL", "OTLP_PURPOSES", "FlushResult", "OutboxSender", "preview_payloads"]

OTLP_PURPOSES = ("usage-stats", "crash-reports")
MIN_INTERVAL = 3600.0
"""Seconds between two sends of one purpose (a crash loop cannot flood a collector)."""
SEND_STATE_FILE = "send-state.json"


class _Consent(Protocol):
    def require(self, purpose_id: str) -> None: ...
    def is_granted(self, purpose_id: str) -> bool: ...


@dataclass(frozen=True)
class FlushResult:
    purpose: str
    sent: int
    left: int
    status: str
    """``sent``, ``nothing-to-send``, ``rate-limited``, or why it failed."""


def _version() -> str:
    from .consent import _aegis_version

    return _aegis_version()


def preview_payloads(records: list[QueuedRecord]) -> list[dict[str, Any]]:
    """The OTLP documents that sending ``records`` would POST, batch by batch (uncompressed)."""
    return [encode_logs(batch, service_version=_version()) for batch in batches(records)]


class OutboxSender:
    def __init__(
        self,
        outbox: Outbox,
        consent: _Consent,
        cloud: CloudSettings,
        transport: Callable[[], Transport],
        sent_log: SentLog,
        *,
        state_path: Path | None = None,
        min_interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self._consent = consent
        self.cloud = cloud
        self._make_transport = transport
        self.sent_log = sent_log
        self._state_path = state_path
        self.min_interval = min_interval
        self._clock = clock

    @classmethod
    def for_paths(
        cls,
        paths: AegisPaths,
        consent: _Consent,
        transport: Callable[[], Transport],
        *,
        warn: Callable[[str], None] | None = None,
        min_interval: float = MIN_INTERVAL,
    ) -> OutboxSender:
        return cls(
            Outbox.for_paths(paths, warn=warn),
            consent,
            CloudSettings.for_paths(paths),
            transport,
            SentLog.for_paths(paths),
            state_path=paths.state_dir / SEND_STATE_FILE,
            min_interval=min_interval,
        )

    def _state(self) -> dict[str, float]:
        if self._state_path is None:
            return {}
        try:
            raw = json.loads(self._state_path.read_bytes())
        except (OSError, ValueError):
            return {}
        return {k: float(v) for k, v in raw.items() if isinstance(v, int | float)}

    def _not_before(self, purpose_id: str, when: float) -> None:
        if self._state_path is None:
            return
        state = self._state()
        state[purpose_id] = when
        with contextlib.suppress(OSError):
            atomic_write(self._state_path, json.dumps(state).encode())

    def flush(self, purpose_id: str, *, force: bool = False) -> FlushResult:
        """Send ``purpose_id``'s queued records. Raises ConsentRequired when it is off and
        :class:`SendFailed` when the collector could not take them (nothing is lost)."""
        if purpose_id not in OTLP_PURPOSES:
            raise SendFailed(f"{purpose_id} is not sent from the outbox")
        self._consent.require(purpose_id)
        endpoint = self.cloud.endpoint(purpose_id)
        if not endpoint:
            key = purpose_id.replace("-", "_") + "_url"
            raise SendFailed(f"no endpoint for {purpose_id}: set {key} in [cloud] of settings.toml")
        records = self.outbox.pending(purpose_id, consent=self._consent)
        if not records:
            return FlushResult(purpose_id, 0, 0, "nothing-to-send")
        now = self._clock()
        if not force and now < self._state().get(purpose_id, 0.0):
            return FlushResult(purpose_id, 0, len(records), "rate-limited")
        url = logs_url(endpoint)
        transport = self._make_transport()
        sent = 0
        for batch in batches(records):
            document = encode_logs(batch, service_version=_version())
            body = gzip_body(document)
            headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip"}
            try:
                self._consent.require(purpose_id)  # revoked meanwhile: stop here
                reply = transport.send(purpose_id, "POST", url, body, headers)
            except AegisError as exc:
                self._not_before(purpose_id, now + self.min_interval)
                raise SendFailed(
                    f"{purpose_id}: {sent} record(s) sent, {len(records) - sent} kept in the "
                    f"outbox: {exc}"
                ) from exc
            if not reply.ok:
                wait = reply.retry_after() or self.min_interval
                self._not_before(purpose_id, now + wait)
                raise SendFailed(
                    f"{purpose_id}: the collector answered HTTP {reply.status}; {sent} "
                    f"record(s) sent, {len(records) - sent} kept in the outbox"
                )
            self.outbox.remove([r.id for r in batch])
            self.sent_log.record(
                purpose_id, "POST", url, len(body), reply.status, json.loads(gzip.decompress(body))
            )
            sent += len(batch)
        self._not_before(purpose_id, now + self.min_interval)
        return FlushResult(purpose_id, sent, 0, "sent")
