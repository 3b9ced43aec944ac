"""The quarantine: an encrypted vault with crash-safe, symlink-safe quarantine and restore."""

from __future__ import annotations

from .keys import KeyStore
from .metadata import VaultItem
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
    "KeyStore",
    "QuarantineSettings",
    "Vault",
    "VaultItem",
]
