"""TLS for the one session: verification always on, TLS >= 1.2, SPKI pins, mTLS.

Pins are checked on the connection itself, right after urllib3 has completed the handshake
and verified the chain and the host name, and before a single byte of the request is sent:
:class:`PinnedHTTPSConnection` overrides ``connect``. (urllib3's ``assert_fingerprint`` pins
the whole certificate and switches host-name checking off, so it is not used.)
"""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from requests.adapters import HTTPAdapter
from requests.utils import prepend_scheme_if_needed, select_proxy
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.ssl_ import create_urllib3_context

from ..errors import ClientCertError, ConfigError, PinMismatch, TLSVerificationError
from .config import NetConfig

__all__ = ["PinnedAdapter", "build_ssl_context", "spki_sha256"]


def spki_sha256(der_cert: bytes) -> str:
    """SHA-256 (hex) of a certificate's SubjectPublicKeyInfo, the value a pin names."""
    cert = x509.load_der_x509_certificate(der_cert)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def _ca_source(config: NetConfig) -> str:
    if config.ca_file is not None:
        if not config.ca_file.is_file():
            raise ConfigError(f"the CA file {config.ca_file} does not exist")
        return str(config.ca_file)
    if config.trust_env:
        for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            value = os.environ.get(var)
            if value:
                return value
    import certifi

    return str(certifi.where())


def _key_passphrase(config: NetConfig, key_path: Path) -> str | None:
    """The passphrase of an encrypted client key, from the OS keyring (never from a file)."""
    try:
        head = key_path.read_bytes()[:4096]
    except OSError as exc:
        raise ClientCertError(f"cannot read the client key {key_path}: {exc}") from exc
    if b"ENCRYPTED" not in head:
        return None
    import keyring
    import keyring.errors
    from keyring.backends import fail

    entry = f"client-key:{key_path}"
    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise ClientCertError(
            f"the client key {key_path} is encrypted and this machine has no OS keyring to "
            f"hold its passphrase; Aegis never reads it from a file. Install or unlock a "
            f"keyring (Secret Service, KWallet, macOS Keychain, Windows Credential Locker), "
            f"then store it: keyring set {config.keyring_service} {entry}"
        )
    try:
        secret = keyring.get_password(config.keyring_service, entry)
    except keyring.errors.KeyringError as exc:
        raise ClientCertError(f"the OS keyring could not be read: {exc}") from exc
    if secret is None:
        raise ClientCertError(
            f"no passphrase for the client key {key_path} in the OS keyring; store it with: "
            f"keyring set {config.keyring_service} {entry}"
        )
    return secret


def build_ssl_context(config: NetConfig) -> ssl.SSLContext:
    """Certificate and host-name verification on, TLS 1.2 at least, CA file, client cert."""
    ctx = create_urllib3_context(
        ssl_minimum_version=ssl.TLSVersion.TLSv1_2, cert_reqs=ssl.CERT_REQUIRED
    )
    source = _ca_source(config)
    try:
        if os.path.isdir(source):
            ctx.load_verify_locations(capath=source)
        else:
            ctx.load_verify_locations(cafile=source)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA certificates {source}: {exc}") from exc
    if config.client_cert is not None:
        key = config.client_key
        password = _key_passphrase(config, key) if key is not None else None
        try:
            ctx.load_cert_chain(
                str(config.client_cert), str(key) if key is not None else None, password
            )
        except (OSError, ssl.SSLError) as exc:
            raise ClientCertError(
                f"cannot use the client certificate {config.client_cert}: {exc}"
            ) from exc
    return ctx


class PinnedHTTPSConnection(urllib3.connection.HTTPSConnection):
    """An HTTPS connection that refuses a server whose key matches none of ``aegis_pins``."""

    aegis_pins: tuple[str, ...] = ()

    def connect(self) -> None:
        super().connect()  # handshake, chain and host name verified by urllib3
        if not self.aegis_pins:
            return
        sock: Any = self.sock
        der = sock.getpeercert(binary_form=True) if sock is not None else None
        got = spki_sha256(der) if der else ""
        if got not in self.aegis_pins:
            self.close()
            raise PinMismatch(
                f"the server {self.host} presented a key (SPKI SHA-256 {got or 'none'}) "
                "that matches none of the configured pins; nothing was sent"
            )


class PinnedAdapter(HTTPAdapter):
    """A requests adapter whose HTTPS pools use our context and pinned connections."""

    def __init__(self, config: NetConfig, ssl_context: ssl.SSLContext) -> None:
        self._ssl_context = ssl_context
        conn_cls = type(
            "AegisPinnedConnection",
            (PinnedHTTPSConnection,),
            {"aegis_pins": config.pins_normalized},
        )
        pool_cls = type("AegisPinnedPool", (HTTPSConnectionPool,), {"ConnectionCls": conn_cls})
        self._pool_classes: dict[str, type[HTTPConnectionPool]] = {
            "http": HTTPConnectionPool,
            "https": pool_cls,
        }
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pool_classes
        return manager

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Verification is fixed in our SSL context; per-request ``verify`` is ignored."""

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> HTTPConnectionPool:
        url = request.url or ""
        parsed = urlparse(url)
        scheme = parsed.scheme.lower()
        pool_kwargs: dict[str, Any] = {}
        if scheme == "https":
            pool_kwargs = {"ssl_context": self._ssl_context, "cert_reqs": "CERT_REQUIRED"}
        proxy = select_proxy(url, dict(proxies or {}))
        manager: Any = self.poolmanager
        if proxy:
            manager = self.proxy_manager_for(prepend_scheme_if_needed(proxy, "http"))
        pool: HTTPConnectionPool = manager.connection_from_host(
            scheme=scheme, host=parsed.hostname, port=parsed.port, pool_kwargs=pool_kwargs
        )
        return pool


def describe_ssl_error(exc: BaseException) -> TLSVerificationError:
    """One clear line for a failed TLS verification."""
    text = str(exc)
    reason = getattr(exc, "reason", None)
    if reason is not None:
        text = str(reason)
    return TLSVerificationError(f"the server's certificate was refused: {text}")
