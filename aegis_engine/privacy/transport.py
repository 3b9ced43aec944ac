"""What the privacy senders need from the network layer: one call, naming its purpose.

The privacy package holds no network code. Everything it sends goes through a
:class:`Transport`, which in the product is the engine's one hardened HTTPS session
(``aegis_engine.net``, adapted in :mod:`aegis_engine.privacy.wire`): it asks the consent gate
for the purpose before it opens a socket, verifies certificates and pins, and rate limits.
Tests may pass any object with this method.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Reply", "Transport"]


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def retry_after(self) -> float | None:
        value = {k.lower(): v for k, v in self.headers.items()}.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return None


class Transport(Protocol):
    def send(
        self,
        purpose: str,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request for ``purpose``; raise an :class:`~aegis_engine.errors.AegisError`
        when it could not be made (no consent, pin mismatch, server unreachable)."""
        ...
