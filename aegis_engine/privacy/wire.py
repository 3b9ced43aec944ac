"""The privacy senders' side of the engine's one network layer (:mod:`aegis_engine.net`).

:func:`transport_for` wraps a :class:`~aegis_engine.net.NetClient` (one hardened requests
session: certificate verification always on, the SPKI pins and CA file of the ``[updates]``
table, consent checked before any socket) in the :class:`~.transport.Transport` the senders
use. The look-up service and the collectors are trusted like the update server: the same CA
file and pins apply ("served from the same TLS-pinned host"). Retries are off here: a record
that could not be sent stays in the outbox for the next try, and a look-up that fails leaves
the local verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..errors import HTTPStatusError
from ..net import NetClient, update_settings_from
from ..net.client import ConsentGate
from ..paths import AegisPaths
from ..settings import SettingsStore
from .transport import Reply, Transport

__all__ = ["MAX_REPLY_BYTES", "NetTransport", "transport_for"]

MAX_REPLY_BYTES = 4 * 1024 * 1024
"""No answer of a look-up service or collector needs more (range files are a few KiB)."""


class NetTransport:
    def __init__(self, client: NetClient) -> None:
        self.client = client

    def send(
        self,
        purpose: str,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        try:
            with self.client.open(
                method, url, purpose=purpose, body=body, max_bytes=MAX_REPLY_BYTES, headers=headers
            ) as resp:
                data = resp.read()
                return Reply(resp.status, data, dict(resp.headers))
        except HTTPStatusError as exc:  # the server answered: the caller decides what it means
            return Reply(exc.status)

    def close(self) -> None:
        self.client.close()


def transport_for(paths: AegisPaths, consent: ConsentGate) -> Transport:
    """A transport over a new session configured from settings (``[updates]`` trust)."""
    net = update_settings_from(SettingsStore(paths.settings_file).current.values).net
    return NetTransport(NetClient(replace(net, retries=0), consent))
