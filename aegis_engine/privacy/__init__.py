"""Privacy: the consent store that decides what, if anything, may leave this machine.

``ConsentStore.require(purpose)`` is called right before anything would be sent; it raises
:class:`~aegis_engine.errors.ConsentRequired` unless the user allowed that purpose. The CLI
(``aegis consent``) and the tray app share one store per profile.
"""

from __future__ import annotations

from ..errors import ConsentRequired, ConsentStoreError, PrivacyError, UnknownPurpose
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
