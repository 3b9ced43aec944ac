"""Where each purpose sends to: the ``[cloud]`` table of settings.toml, read through this one
small adapter (so the typed settings module can replace the reading without touching the
senders).

```toml
[cloud]
lookup_url = "https://ranges.example.org/aegis"       # base URL of the range files
usage_stats_url = "https://otel.example.org"           # OTLP/HTTP base: POST .../v1/logs
crash_reports_url = "https://otel.example.org"
sample_submission_url = "https://samples.example.org/submit"
lookup_cache_hours = 24
```

None is preset (the update server is the only preset endpoint, and it is not here): a purpose
without an endpoint sends nothing. Every URL must be ``https://``. The consent store records
the endpoint a grant was given for; changing an endpoint makes the purpose count as off
until the user allows it again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..paths import AegisPaths
from ..settings import SettingsStore

__all__ = ["CloudSettings", "endpoints_for", "lookup_enabled"]

_HTTPS = re.compile(r"^https://(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?(?:/[^\s?#@]*)?$")
_URL_KEYS = {
    "cloud-lookup": "lookup_url",
    "usage-stats": "usage_stats_url",
    "crash-reports": "crash_reports_url",
    "sample-submission": "sample_submission_url",
}


def _url(table: Mapping[str, Any], key: str) -> str:
    value = table.get(key, "")
    if value in ("", None):
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"[cloud] {key} must be a string URL")
    if not _HTTPS.match(value):
        raise ConfigError(
            f"[cloud] {key} must be an https:// URL without a user, query or fragment "
            f"(got {value!r})"
        )
    return value.rstrip("/")


@dataclass(frozen=True)
class CloudSettings:
    lookup_url: str = ""
    usage_stats_url: str = ""
    crash_reports_url: str = ""
    sample_submission_url: str = ""
    lookup_cache_hours: float = 24.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> CloudSettings:
        table = settings.get("cloud", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[cloud] in settings must be a table")
        unknown = set(table) - {*_URL_KEYS.values(), "lookup_cache_hours"}
        if unknown:
            raise ConfigError(f"unknown [cloud] setting(s): {', '.join(sorted(unknown))}")
        hours = table.get("lookup_cache_hours", 24.0)
        if isinstance(hours, bool) or not isinstance(hours, int | float) or hours < 0:
            raise ConfigError("[cloud] lookup_cache_hours must be a number of hours, 0 or more")
        return cls(
            lookup_url=_url(table, "lookup_url"),
            usage_stats_url=_url(table, "usage_stats_url"),
            crash_reports_url=_url(table, "crash_reports_url"),
            sample_submission_url=_url(table, "sample_submission_url"),
            lookup_cache_hours=float(hours),
        )

    @classmethod
    def for_paths(cls, paths: AegisPaths) -> CloudSettings:
        return cls.from_settings(SettingsStore(paths.settings_file).current.values)

    def endpoints(self) -> dict[str, str]:
        """Purpose id -> its endpoint (only those configured)."""
        out = {pid: getattr(self, key) for pid, key in _URL_KEYS.items()}
        return {pid: url for pid, url in out.items() if url}

    def endpoint(self, purpose_id: str) -> str:
        return self.endpoints().get(purpose_id, "")


def endpoints_for(paths: AegisPaths) -> dict[str, str]:
    return CloudSettings.for_paths(paths).endpoints()


def lookup_enabled(paths: AegisPaths, warn: Callable[[str], None] | None = None) -> str | None:
    """A version string for the scan cache when scans should look files up (consent given and
    a service configured), else None. The version changes with the service and with each
    cache period, so cached scan results are looked up again after that long."""
    import hashlib
    import time

    from ..errors import AegisError

    try:
        cloud = CloudSettings.for_paths(paths)
        if not cloud.lookup_url:  # the default: nothing else to read
            return None
        from .consent import ConsentStore

        if not ConsentStore.for_paths(paths).is_granted("cloud-lookup"):
            return None
    except AegisError as exc:
        if warn is not None:
            warn(f"cloud look-ups off: {exc}")
        return None
    period = max(cloud.lookup_cache_hours * 3600, 60.0)
    stamp = f"{cloud.lookup_url}|{int(time.time() // period)}"
    return "cloud-" + hashlib.sha256(stamp.encode()).hexdigest()[:12]
