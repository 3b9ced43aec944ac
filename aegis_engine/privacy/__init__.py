"""Privacy: the consent store that decides what, if anything, may leave this machine.

``ConsentStore.require(purpose)`` is called right before anything would be sent; it raises
:class:`~aegis_engine.errors.ConsentRequired` unless the user allowed that purpose. The CLI
(``aegis consent``) and the tray app share one store per profile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConsentRequired, ConsentStoreError, PrivacyError, UnknownPurpose

if TYPE_CHECKING:
    from .consent import (
        CONSENT_FILE,
        DEFAULTS_SENTENCE,
        PURPOSES,
        ConsentState,
        ConsentStore,
        DataField,
        Purpose,
        SendPreview,
        purpose,
    )

def __getattr__(name: str) -> Any:
    """The consent names load on first use: a scan that only checks whether a look-up
    service is configured does not pay for building the purposes (package metadata). Every
    name of ``__all__`` not defined here comes from :mod:`.consent`."""
    if name in __all__:
        from . import consent

        return getattr(consent, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONSENT_FILE",
    "DEFAULTS_SENTENCE",
    "PURPOSES",
    "ConsentRequired",
    "ConsentState",
    "ConsentStore",
    "ConsentStoreError",
    "DataField",
    "PrivacyError",
    "Purpose",
    "SendPreview",
    "UnknownPurpose",
    "purpose",
]
