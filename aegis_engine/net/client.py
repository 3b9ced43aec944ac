"""The one network client of Aegis: the only code that opens sockets.

Every call names a consent purpose; :meth:`NetClient.open` asks the consent gate first and
raises :class:`~aegis_engine.errors.ConsentRequired` before anything else happens (no
session, no DNS look-up, no socket). Then: a per-host token bucket, one ``requests.Session``
whose HTTPS adapter verifies the chain and host name (TLS >= 1.2), checks SPKI pins before the
request is sent, presents an optional client certificate; connect/read timeouts and a
wall-clock limit per body; retries with exponential backoff and jitter on connection errors,
timeouts and 502/503/504/429, honouring ``Retry-After``; and a hard cap on response bytes,
enforced while streaming.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import requests
import urllib3.exceptions

from ..errors import (
    HTTPStatusError,
    NetTimeout,
    NetworkError,
    PinMismatch,
    ResponseTooLarge,
    TLSVerificationError,
)
from .config import NetConfig
from .ratelimit import HostRateLimiter
from .tls import PinnedAdapter, build_ssl_context, describe_ssl_error

__all__ = ["ConsentGate", "NetClient", "NetResponse", "StreamedResponse"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
CHUNK = 64 * 1024


class ConsentGate(Protocol):
    """What the client needs of the consent store: raise unless ``purpose`` is granted."""

    def require(self, purpose_id: str) -> None: ...


@dataclass(frozen=True)
class NetResponse:
    """A whole response body (within its cap)."""

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes


class StreamedResponse:
    """A response whose body is read chunk by chunk within the byte cap and the deadline."""

    def __init__(
        self, resp: requests.Response, max_bytes: int, deadline: float, clock: Callable[[], float]
    ) -> None:
        self._resp = resp
        self._max = max_bytes
        self._deadline = deadline
        self._clock = clock
        self.url = resp.url
        self.status = resp.status_code
        self.headers: Mapping[str, str] = resp.headers
        self.bytes_read = 0

    def iter_chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        try:
            for chunk in self._resp.raw.stream(size, decode_content=False):
                self.bytes_read += len(chunk)
                if self.bytes_read > self._max:
                    raise ResponseTooLarge(
                        f"{self.url} sent more than {self._max} bytes; the download was cut off"
                    )
                if self._clock() > self._deadline:
                    raise NetTimeout(f"{self.url} took too long to send its answer")
                yield chunk
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            raise NetTimeout(f"{self.url} stopped sending (read timeout)") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise NetworkError(f"the download from {self.url} broke off: {exc}") from exc
        finally:
            self.close()

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _retry_after(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class NetClient:
    """One hardened HTTPS session; see the module docstring. Thread-safe; close when done."""

    def __init__(
        self,
        config: NetConfig,
        consent: ConsentGate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._consent = consent
        self._clock = clock
        self._sleep = sleep
        self._wall = wall_clock
        self._limiter = HostRateLimiter(
            config.rate_per_host, config.burst_per_host, clock=clock, sleep=sleep
        )
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    # -- session -------------------------------------------------------------------------------

    def _get_session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                session = requests.Session()
                session.trust_env = self.config.trust_env
                session.max_redirects = 5
                session.headers["User-Agent"] = self.config.user_agent
                session.headers["Accept-Encoding"] = "identity"
                if self.config.proxy:
                    session.proxies = {"http": self.config.proxy, "https": self.config.proxy}
                adapter = PinnedAdapter(self.config, build_ssl_context(self.config))
                session.mount("https://", adapter)
                session.mount("http://", _RefuseHTTP())
                self._session = session
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def __enter__(self) -> NetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- calls ---------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        purpose: str,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> NetResponse:
        """GET ``url`` for ``purpose``; the whole body, at most ``max_bytes``."""
        return self._whole(
            self.open("GET", url, purpose=purpose, max_bytes=max_bytes, headers=headers)
        )

    def post(
        self,
        url: str,
        *,
        purpose: str,
        body: bytes,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> NetResponse:
        """POST ``body`` for ``purpose`` (sent only after the TLS checks and pins passed)."""
        return self._whole(
            self.open("POST", url, purpose=purpose, body=body, max_bytes=max_bytes, headers=headers)
        )

    @staticmethod
    def _whole(opened: StreamedResponse) -> NetResponse:
        """The whole answer of a request :meth:`open` made."""
        with opened as r:
            body = r.read()
            return NetResponse(r.url, r.status, dict(r.headers), body)

    def open(
        self,
        method: str,
        url: str,
        *,
        purpose: str,
        body: bytes | None = None,
        max_bytes: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> StreamedResponse:
        """Send one request for ``purpose``; the caller reads the body through the result."""
        self._consent.require(purpose)  # before anything: no session, no socket
        parsed = urlparse(url)
        if parsed.scheme != "https" or not parsed.hostname:
            raise NetworkError(f"only https:// addresses are allowed, not {url!r}")
        cap = max_bytes if max_bytes is not None else self.config.max_response_bytes
        session = self._get_session()
        idempotent = method in ("GET", "HEAD")
        attempt = 0
        while True:
            self._limiter.acquire(parsed.hostname)
            try:
                resp = self._send(session, method, url, body, headers)
            except (NetTimeout, NetworkError) as exc:
                if isinstance(exc, TLSVerificationError) or not idempotent:
                    raise
                if attempt >= self.config.retries:
                    raise
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            if resp.status_code in RETRY_STATUSES:
                wait = _retry_after(resp.headers.get("Retry-After"), self._wall())
                status = resp.status_code
                resp.close()
                if attempt >= self.config.retries:
                    raise HTTPStatusError(status, url, "still busy after retries")
                if wait is not None and wait > self.config.max_retry_after:
                    raise HTTPStatusError(status, url, f"the server asks to retry in {wait:.0f} s")
                self._sleep(wait if wait is not None else self._backoff(attempt))
                attempt += 1
                continue
            if resp.status_code >= 400:
                status = resp.status_code
                resp.close()
                raise HTTPStatusError(status, url)
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > cap:
                resp.close()
                raise ResponseTooLarge(f"{url} announces {length} bytes, more than {cap}")
            deadline = self._clock() + self.config.total_timeout
            return StreamedResponse(resp, cap, deadline, self._clock)

    def _backoff(self, attempt: int) -> float:
        base: float = self.config.backoff * (2**attempt)
        return base + random.uniform(0, base / 2)  # jitter, not a secret

    def _send(
        self,
        session: requests.Session,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        try:
            return session.request(
                method,
                url,
                data=body,
                headers=dict(headers or {}),
                stream=True,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
            )
        except PinMismatch:
            raise
        except requests.exceptions.SSLError as exc:
            raise describe_ssl_error(exc) from exc
        except requests.exceptions.ProxyError as exc:
            raise NetworkError(f"the proxy refused or failed: {exc}") from exc
        except requests.exceptions.Timeout as exc:
            raise NetTimeout(f"{url} did not answer in time") from exc
        except requests.exceptions.TooManyRedirects as exc:
            raise NetworkError(f"{url} redirects too often") from exc
        except requests.exceptions.RequestException as exc:
            raise NetworkError(f"cannot reach {url}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    inner: Any = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None)
    return str(reason or inner)


class _RefuseHTTP(requests.adapters.BaseAdapter):
    """Plain HTTP is never used (a redirect to http:// is refused)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        raise NetworkError(f"refusing plain HTTP: {request.url}")

    def close(self) -> None:
        return None
