"""The privacy senders' side of the engine's one network layer (``aegis_engine.net``)."""

from __future__ import annotations

from ..paths import AegisPaths
from .transport import Transport

__all__ = ["transport_for"]


def transport_for(paths: AegisPaths, consent: object) -> Transport:
    raise NotImplementedError("network layer not merged yet")
