"""What each purpose would send next, exactly: the one view behind ``aegis privacy preview``
and the tray app's Privacy settings.

For usage statistics and crash reports: the OTLP requests the outbox would make now, with
the body byte for byte before gzip. For look-ups: the request a look-up makes (a 5-character
prefix in the path, no body). For samples: nothing is ever queued; each one is confirmed when
it is offered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from ..errors import AegisError
from ..paths import AegisPaths
from .consent import PURPOSES
from .endpoints import CloudSettings
from .otlp import CONTENT_TYPE, logs_url
from .outbox import Outbox
from .sender import OTLP_PURPOSES, preview_payloads

__all__ = ["build_preview"]


class _Consent(Protocol):
    def is_granted(self, purpose_id: str) -> bool: ...


def _session_headers() -> dict[str, str]:
    """The headers the network session adds to every request (no identifier among them)."""
    try:
        from ..net import NetConfig

        agent = NetConfig().user_agent
    except ImportError:  # pragma: no cover
        agent = "aegis"
    return {"User-Agent": agent, "Accept-Encoding": "identity"}


def _update_server(paths: AegisPaths) -> str:
    try:
        from ..net import update_settings_from
        from ..settings import SettingsStore

        values = SettingsStore(paths.settings_file).current.values
        return update_settings_from(values).server or ""
    except (AegisError, ImportError):
        return ""


def build_preview(
    paths: AegisPaths, consent: _Consent, *, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    try:
        cloud = CloudSettings.for_paths(paths)
    except AegisError as exc:
        if warn is not None:
            warn(str(exc))
        cloud = CloudSettings()
    outbox = Outbox.for_paths(paths, warn=warn)
    pending = outbox.pending(consent=consent)
    views: list[dict[str, Any]] = []
    for p in PURPOSES:
        allowed = consent.is_granted(p.id)
        endpoint = cloud.endpoint(p.id)
        nxt: list[dict[str, Any]] = []
        queued = [r for r in pending if r.purpose == p.id]
        if p.id in OTLP_PURPOSES:
            note = (
                f"{len(queued)} record(s) queued; sent as OTLP/HTTP JSON logs, gzip-compressed"
                if allowed
                else "off: nothing is queued or sent"
            )
            if allowed and queued:
                for doc in preview_payloads(queued):
                    nxt.append(
                        {
                            "method": "POST",
                            "url": logs_url(endpoint) if endpoint else "(no endpoint)",
                            "headers": {
                                **_session_headers(),
                                "Content-Type": CONTENT_TYPE,
                                "Content-Encoding": "gzip",
                            },
                            "body": json.dumps(doc, separators=(",", ":"), ensure_ascii=False),
                        }
                    )
        elif p.id == "cloud-lookup":
            note = (
                "each look-up sends the first 5 hex digits of a file's SHA-256, nothing else"
                if allowed
                else "off: no look-up is made"
            )
            if allowed and endpoint:
                nxt.append(
                    {
                        "method": "GET",
                        "url": f"{endpoint}/range/<5 hex digits, e.g. 275a0>",
                        "headers": {**_session_headers(), "Accept": "text/plain"},
                        "body": None,
                    }
                )
        elif p.id == "sample-submission":
            note = "nothing is queued: each file is sent only when you confirm it"
        else:
            endpoint = _update_server(paths)
            note = "update checks are made by the updater (no identifier, no body)"
        views.append(
            {
                "id": p.id,
                "title": p.title,
                "allowed": allowed,
                "endpoint": endpoint,
                "queued": len(queued),
                "note": note,
                "next": nxt,
            }
        )
    return views
