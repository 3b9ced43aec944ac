"""Typed options of the network layer, and the adapter that reads them from settings.

The settings live in ``settings.toml`` under ``[updates]`` (``server``, ``root``, ``ca_file``,
``pins``, ``client_cert``, ``client_key``, ``proxy``). :func:`net_config_from_settings` is the
one place that turns that table into a :class:`NetConfig`, so the typed settings module can
replace the plain dict without touching the network code.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["NetConfig", "UpdateSettings", "normalize_pin", "update_settings_from"]

KEYRING_SERVICE = "aegis"


def normalize_pin(pin: str) -> str:
    """A SPKI SHA-256 pin as lowercase hex. Accepts hex (with or without ``:``), base64
    (as in HPKP/curl's ``sha256//...``)."""
    text = pin.strip()
    if text.startswith("sha256//"):
        text = text[len("sha256//") :]
    hexed = text.replace(":", "").lower()
    if len(hexed) == 64 and all(c in "0123456789abcdef" for c in hexed):
        return hexed
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            f"pin {pin!r} is not a SHA-256 of a public key (64 hex digits or 44 base64 chars)"
        )
    return raw.hex()


@dataclass(frozen=True)
class NetConfig:
    """How the one HTTPS session behaves. Defaults are safe: verification always on."""

    ca_file: Path | None = None
    """Extra trust anchors (PEM); otherwise ``REQUESTS_CA_BUNDLE`` or the system's/certifi's."""
    pins: tuple[str, ...] = ()
    """SPKI SHA-256 pins (hex); any one matching is enough (rotation). Empty: no pinning."""
    client_cert: Path | None = None
    client_key: Path | None = None
    """mTLS; an encrypted key's passphrase comes from the OS keyring, never from settings."""
    keyring_service: str = KEYRING_SERVICE
    proxy: str | None = None
    """Proxy URL for every scheme; the environment's ``HTTPS_PROXY``/``NO_PROXY`` also apply."""
    trust_env: bool = True
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    """Wall-clock limit for one response body (a server trickling bytes is cut off)."""
    retries: int = 3
    backoff: float = 0.5
    """First wait between tries; doubled each time (with jitter)."""
    max_retry_after: float = 120.0
    """A ``Retry-After`` longer than this is not waited for: the call fails saying so."""
    rate_per_host: float = 5.0
    """Requests per second per host (token bucket refill)."""
    burst_per_host: int = 10
    max_response_bytes: int = 64 * 1024 * 1024
    """Hard cap for any response when the caller gives none."""
    user_agent: str = "aegis"
    pins_normalized: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pins_normalized", tuple(normalize_pin(p) for p in self.pins))
        if self.client_key is not None and self.client_cert is None:
            raise ConfigError("a client key needs a client certificate (client_cert)")
        if self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ConfigError("network timeouts must be positive")
        if self.retries < 0 or self.max_response_bytes <= 0:
            raise ConfigError("retries must be >= 0 and the response cap positive")


@dataclass(frozen=True)
class UpdateSettings:
    """The ``[updates]`` settings table, typed."""

    server: str | None = None
    root: Path | None = None
    net: NetConfig = field(default_factory=NetConfig)
    app: str = "stage"
    """New builds of the program: ``stage`` (download, verify and stage them for the next
    start), ``check`` (only say there is one) or ``off``."""


def _opt_str(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"[updates] {key} must be a string")
    return value


def _opt_path(table: Mapping[str, Any], key: str) -> Path | None:
    value = _opt_str(table, key)
    return Path(value).expanduser() if value else None


def update_settings_from(settings: Mapping[str, Any]) -> UpdateSettings:
    """Read the ``[updates]`` table of a settings mapping (adapter for the settings module)."""
    table = settings.get("updates", {})
    if not isinstance(table, Mapping):
        raise ConfigError("[updates] in settings must be a table")
    known = {"server", "root", "ca_file", "pins", "client_cert", "client_key", "proxy", "app"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [updates]: {', '.join(sorted(unknown))}")
    pins = table.get("pins", [])
    if isinstance(pins, str):
        pins = [pins]
    if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
        raise ConfigError("[updates] pins must be a list of strings")
    net = NetConfig(
        ca_file=_opt_path(table, "ca_file"),
        pins=tuple(pins),
        client_cert=_opt_path(table, "client_cert"),
        client_key=_opt_path(table, "client_key"),
        proxy=_opt_str(table, "proxy"),
    )
    app = table.get("app", "stage")
    if app not in ("stage", "check", "off"):
        raise ConfigError("[updates] app must be stage, check or off")
    return UpdateSettings(
        server=_opt_str(table, "server"), root=_opt_path(table, "root"), net=net, app=app
    )
