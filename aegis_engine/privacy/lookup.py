"""Cloud hash reputation by k-anonymous range look-up (purpose ``cloud-lookup``).

:meth:`RangeLookup.lookup` asks the consent store first (refused before any socket is
opened), then its cache (answers kept ``[cloud] lookup_cache_hours``, by prefix), then the
configured service for ``{lookup_url}/range/{prefix}``: only the five-character prefix
leaves. The answer lists every known hash with that prefix, padded to one size; the match is
made here. Every request is written to the sent log. Offline, the local verdict stands: the
caller gets :class:`~aegis_engine.errors.LookupFailed` and scans go on without it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..atomic import atomic_write
from ..errors import AegisError, LookupFailed
from ..paths import AegisPaths
from .endpoints import CloudSettings
from .ranges import RangeEntry, Reputation, lookup_in, parse_range, prefix_of
from .sentlog import SentLog
from .transport import Transport

__all__ = ["LOOKUP_CACHE_FILE", "LookupResult", "RangeLookup"]

LOOKUP_CACHE_FILE = "lookup-cache.json"
MAX_CACHED_PREFIXES = 5000
PURPOSE = "cloud-lookup"


class _Consent(Protocol):
    def require(self, purpose_id: str) -> None: ...


@dataclass(frozen=True)
class LookupResult:
    sha256: str
    reputation: Reputation
    name: str = ""
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "reputation": self.reputation.value,
            "name": self.name,
            "cached": self.cached,
        }


class RangeLookup:
    """Look-ups against one service; thread-safe. The transport is built only when a request
    has to be made (never without consent)."""

    def __init__(
        self,
        consent: _Consent,
        cloud: CloudSettings,
        transport: Callable[[], Transport],
        *,
        cache_path: Path | None = None,
        sent_log: SentLog | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._consent = consent
        self.cloud = cloud
        self._make_transport = transport
        self._transport: Transport | None = None
        self._cache_path = cache_path
        self._sent_log = sent_log
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] | None = None

    @classmethod
    def for_paths(
        cls, paths: AegisPaths, consent: _Consent, transport: Callable[[], Transport]
    ) -> RangeLookup:
        return cls(
            consent,
            CloudSettings.for_paths(paths),
            transport,
            cache_path=paths.cache_dir / LOOKUP_CACHE_FILE,
            sent_log=SentLog.for_paths(paths),
        )

    # -- cache -------------------------------------------------------------------------------

    def _load_cache(self) -> dict[str, dict[str, Any]]:
        if self._cache is None:
            self._cache = {}
            if self._cache_path is not None:
                try:
                    raw = json.loads(self._cache_path.read_bytes())
                    if isinstance(raw, dict):
                        self._cache = {k: v for k, v in raw.items() if isinstance(v, dict)}
                except (OSError, ValueError):
                    self._cache = {}  # a lost cache only costs a request
        return self._cache

    def _cached(self, prefix: str) -> dict[str, RangeEntry] | None:
        entry = self._load_cache().get(prefix)
        if entry is None:
            return None
        ttl = self.cloud.lookup_cache_hours * 3600
        at = entry.get("at")
        if not isinstance(at, int | float) or self._clock() - at > ttl:
            return None
        out: dict[str, RangeEntry] = {}
        for digest, (rep, name) in entry.get("entries", {}).items():
            out[digest] = RangeEntry(digest, Reputation(rep), name)
        return out

    def _store(self, prefix: str, entries: dict[str, RangeEntry]) -> None:
        cache = self._load_cache()
        cache[prefix] = {
            "at": self._clock(),
            "entries": {d: [e.reputation.value, e.name] for d, e in entries.items()},
        }
        while len(cache) > MAX_CACHED_PREFIXES:
            cache.pop(next(iter(cache)))
        if self._cache_path is not None:
            # A cache that cannot be written only costs the next run a request.
            with contextlib.suppress(OSError):
                atomic_write(self._cache_path, json.dumps(cache).encode())

    # -- look-up -----------------------------------------------------------------------------

    def lookup(self, sha256: str) -> LookupResult:
        """The reputation of one SHA-256; :class:`LookupFailed` (or ConsentRequired, a
        PrivacyError too) when it cannot be known now."""
        self._consent.require(PURPOSE)  # before anything else, every time
        if not self.cloud.lookup_url:
            raise LookupFailed(
                "no look-up service is configured: set lookup_url in the [cloud] table of "
                "settings.toml"
            )
        try:
            prefix = prefix_of(sha256)
        except ValueError as exc:
            raise LookupFailed(f"cannot look up {sha256!r}: {exc}") from None
        with self._lock:
            entries = self._cached(prefix)
            cached = entries is not None
            if entries is None:
                entries = self._fetch(prefix)
                self._store(prefix, entries)
        hit = lookup_in(entries, sha256)
        return LookupResult(sha256.lower(), hit.reputation, hit.name, cached)

    def _fetch(self, prefix: str) -> dict[str, RangeEntry]:
        url = f"{self.cloud.lookup_url}/range/{prefix}"
        if self._transport is None:
            self._transport = self._make_transport()
        try:
            reply = self._transport.send(PURPOSE, "GET", url, None, {"Accept": "text/plain"})
        except AegisError as exc:
            raise LookupFailed(f"the look-up service could not be asked: {exc}") from exc
        if self._sent_log is not None:
            self._sent_log.record(PURPOSE, "GET", url, 0, reply.status, {"prefix": prefix})
        if reply.status == 404:
            return {}  # a host that serves only non-empty ranges: nothing known
        if not reply.ok:
            raise LookupFailed(f"the look-up service answered HTTP {reply.status}")
        return parse_range(prefix, reply.body)
