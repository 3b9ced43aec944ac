"""The network layer: the only package of Aegis that opens sockets.

Use :class:`NetClient` with a :class:`NetConfig` (from settings through
:func:`update_settings_from`) and the consent store; every call names its consent purpose.
"""

from __future__ import annotations

from .client import ConsentGate, NetClient, NetResponse, StreamedResponse
from .config import NetConfig, UpdateSettings, normalize_pin, update_settings_from
from .ratelimit import HostRateLimiter
from .tls import spki_sha256

__all__ = [
    "ConsentGate",
    "HostRateLimiter",
    "NetClient",
    "NetConfig",
    "NetResponse",
    "StreamedResponse",
    "UpdateSettings",
    "normalize_pin",
    "spki_sha256",
    "update_settings_from",
]
