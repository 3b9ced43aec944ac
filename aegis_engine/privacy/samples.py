"""Sample submission (purpose ``sample-submission``): one file, confirmed by the user every
time, uploaded to the configured endpoint. Never automatic: :func:`submit_sample` takes a
:class:`SampleOffer` the user has seen (name, size, detections) and ``confirmed=True``.

The upload is one ``multipart/form-data`` POST with two parts: ``metadata`` (JSON from the
sample allowlist: SHA-256, size, detection names, redacted) and ``file`` (the content, under
the neutral name ``sample.bin``: the real name and folder are never sent).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import AegisError, PrivacyError, SendFailed
from .allowlist import build_record
from .endpoints import CloudSettings
from .redact import Redactor
from .sentlog import SentLog
from .transport import Transport

__all__ = ["MAX_SAMPLE_SIZE", "SampleOffer", "offer_sample", "submit_sample"]

PURPOSE = "sample-submission"
MAX_SAMPLE_SIZE = 64 * 1024 * 1024


class _Consent(Protocol):
    def require(self, purpose_id: str) -> None: ...


@dataclass(frozen=True)
class SampleOffer:
    """What the user is asked to confirm: the file, its size and its detections."""

    path: Path
    name: str
    size: int
    sha256: str
    detections: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "detections": list(self.detections),
        }


def _read(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as fh:
        if not os.path.isfile(path) or os.fstat(fh.fileno()).st_size > MAX_SAMPLE_SIZE:
            raise PrivacyError(
                f"{path} is not a regular file of at most {MAX_SAMPLE_SIZE // 2**20} MiB"
            )
        return fh.read(MAX_SAMPLE_SIZE + 1)


def offer_sample(path: Path, detections: Sequence[str]) -> SampleOffer:
    """Describe ``path`` for the confirmation dialog (reads it once to hash it)."""
    try:
        data = _read(path)
    except OSError as exc:
        raise PrivacyError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return SampleOffer(
        path, path.name, len(data), hashlib.sha256(data).hexdigest(), tuple(detections)
    )


def _multipart(metadata: dict[str, Any], content: bytes) -> tuple[bytes, str]:
    boundary = "aegis-" + secrets.token_hex(16)
    meta = json.dumps(metadata, separators=(",", ":")).encode()
    parts = [
        f"--{boundary}\r\n".encode(),
        b'Content-Disposition: form-data; name="metadata"\r\n',
        b"Content-Type: application/json\r\n\r\n",
        meta,
        f"\r\n--{boundary}\r\n".encode(),
        b'Content-Disposition: form-data; name="file"; filename="sample.bin"\r\n',
        b"Content-Type: application/octet-stream\r\n\r\n",
        content,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def submit_sample(
    offer: SampleOffer,
    *,
    confirmed: bool,
    consent: _Consent,
    cloud: CloudSettings,
    transport: Callable[[], Transport],
    sent_log: SentLog,
    redactor: Redactor | None = None,
) -> int:
    """Upload the offered file; returns the HTTP status. Refuses unless ``confirmed``, the
    purpose is on, an endpoint is set and the file is still what the user saw."""
    if not confirmed:
        raise PrivacyError("a sample is sent only when you confirm it for that file")
    consent.require(PURPOSE)
    url = cloud.sample_submission_url
    if not url:
        raise SendFailed(
            "no endpoint for sample submission: set sample_submission_url in [cloud] of "
            "settings.toml"
        )
    data = _read(offer.path)
    if hashlib.sha256(data).hexdigest() != offer.sha256:
        raise PrivacyError(f"{offer.path} changed since you confirmed it; nothing was sent")
    metadata = build_record(
        PURPOSE,
        {"sha256": offer.sha256, "size": len(data), "detections": list(offer.detections)},
        redactor or Redactor.for_this_machine(),
    )
    body, content_type = _multipart(metadata, data)
    try:
        reply = transport().send(PURPOSE, "POST", url, body, {"Content-Type": content_type})
    except AegisError as exc:
        raise SendFailed(f"the sample could not be sent: {exc}") from exc
    sent_log.record(
        PURPOSE,
        "POST",
        url,
        len(body),
        reply.status,
        {"metadata": metadata, "file": {"name": "sample.bin", "bytes": len(data)}},
    )
    if not reply.ok:
        raise SendFailed(f"the sample service answered HTTP {reply.status}")
    return reply.status
