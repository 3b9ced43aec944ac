"""The quarantine: an encrypted vault with crash-safe, symlink-safe quarantine and restore."""

from __future__ import annotations

from .keys import KeyStatus, KeyStore
from .metadata import UnreadableItem, VaultItem, VaultListing
from .safe_fs import FileIdentity
from .vault import (
    DEFAULT_PURGE_DAYS,
    QUARANTINE_STEPS,
    RESTORE_STEPS,
    QuarantineSettings,
    Vault,
)

__all__ = [
    "DEFAULT_PURGE_DAYS",
    "QUARANTINE_STEPS",
    "RESTORE_STEPS",
    "FileIdentity",
    "KeyStatus",
    "KeyStore",
    "QuarantineSettings",
    "UnreadableItem",
    "Vault",
    "VaultItem",
    "VaultListing",
]
