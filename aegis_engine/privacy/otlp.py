"""OTLP/HTTP JSON logs: how telemetry and crash records leave, so that any OpenTelemetry
Collector receives them (no home-made ingestion format).

One queued record becomes one ``LogRecord`` (``opentelemetry/proto/logs/v1``, JSON mapping of
protobuf: 64-bit integers as strings, ``AnyValue`` wrappers). The resource carries only
``service.name`` and ``service.version``: never ``service.instance.id``, ``host.*`` or any
other identifier. Timestamps are the records' coarse (hour) times. Bodies are gzip-compressed
(``Content-Encoding: gzip``) and batched (:data:`MAX_BATCH` records per request).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .outbox import QueuedRecord

__all__ = [
    "CONTENT_TYPE",
    "LOGS_PATH",
    "MAX_BATCH",
    "any_value",
    "batches",
    "encode_logs",
    "gzip_body",
    "logs_url",
]

LOGS_PATH = "/v1/logs"
CONTENT_TYPE = "application/json"
MAX_BATCH = 100
SCOPE = "aegis.privacy"

_EVENT_NAMES = {
    "usage-stats": "aegis.usage",
    "crash-reports": "aegis.crash",
}
_SEVERITY = {"usage-stats": (9, "INFO"), "crash-reports": (17, "ERROR")}


def logs_url(endpoint: str) -> str:
    """``{endpoint}/v1/logs`` (the OTLP/HTTP logs path under a base URL)."""
    return endpoint.rstrip("/") + LOGS_PATH


def any_value(value: Any) -> dict[str, Any]:
    """An OTLP ``AnyValue`` in its JSON form."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attributes(value)}}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": any_value(v)} for k, v in values.items()]


def _log_record(rec: QueuedRecord) -> dict[str, Any]:
    nanos = str(int(rec.queued_at.timestamp()) * 1_000_000_000)
    number, text = _SEVERITY.get(rec.purpose, (9, "INFO"))
    event = _EVENT_NAMES.get(rec.purpose, "aegis." + rec.purpose)
    return {
        "timeUnixNano": nanos,
        "observedTimeUnixNano": nanos,
        "severityNumber": number,
        "severityText": text,
        "eventName": event,
        "body": {"stringValue": event},
        "attributes": [
            {"key": "event.name", "value": {"stringValue": event}},
            *_attributes({f"aegis.{k}": v for k, v in rec.record.items()}),
        ],
    }


def encode_logs(records: Sequence[QueuedRecord], *, service_version: str) -> dict[str, Any]:
    """An ``ExportLogsServiceRequest`` holding ``records``."""
    return {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": _attributes(
                        {"service.name": "aegis", "service.version": service_version}
                    )
                },
                "scopeLogs": [
                    {
                        "scope": {"name": SCOPE, "version": "1"},
                        "logRecords": [_log_record(r) for r in records],
                    }
                ],
            }
        ]
    }


def gzip_body(document: Mapping[str, Any]) -> bytes:
    """The JSON document, compact and gzip-compressed (mtime 0: no local time leaks)."""
    raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    return gzip.compress(raw, mtime=0)


def batches(records: Sequence[QueuedRecord], size: int = MAX_BATCH) -> list[list[QueuedRecord]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]
