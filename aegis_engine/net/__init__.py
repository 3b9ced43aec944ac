"""The network layer: the only package of Aegis that opens sockets.

Use :class:`NetClient` with a :class:`NetConfig` (from settings through
:func:`update_settings_from`) and the consent store; every call names its consent purpose.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import ConsentGate, NetClient, NetResponse, StreamedResponse
    from .config import NetConfig, UpdateSettings, normalize_pin, update_settings_from
    from .ratelimit import HostRateLimiter
    from .tls import spki_sha256

_HOMES = {
    "ConsentGate": "client",
    "NetClient": "client",
    "NetResponse": "client",
    "StreamedResponse": "client",
    "NetConfig": "config",
    "UpdateSettings": "config",
    "normalize_pin": "config",
    "update_settings_from": "config",
    "HostRateLimiter": "ratelimit",
    "spki_sha256": "tls",
}

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


def __getattr__(name: str) -> Any:
    """Each name from its module on first use: reading the settings (``net.config``) must
    not load requests, urllib3 and cryptography (``net.client``, ``net.tls``; ~20 MB) into
    an idle tray app or ``aegis monitor`` that never goes on line."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
