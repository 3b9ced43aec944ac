"""The one exception hierarchy of Aegis: every error the engine raises derives from AegisError."""

from __future__ import annotations


class AegisError(Exception):
    """Root of all Aegis errors."""


class ConfigError(AegisError):
    """Settings or command-line options are invalid."""


class ContentError(AegisError):
    """Signature content (rules, hash lists, model) is missing or unusable."""


class RuleCompileError(ContentError):
    """A YARA rule file could not be compiled."""


class HashListError(ContentError):
    """A hash list file could not be read."""


class ScanError(AegisError):
    """A scan target could not be scanned."""


class LimitExceeded(ScanError):
    """A configured scan limit was reached; the result is incomplete, never clean."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(f"{limit}: {detail}")
        self.limit = limit
        self.detail = detail


class ContainerError(ScanError):
    """An archive or compressed stream is damaged or unsupported."""


class DetectorError(ScanError):
    """A detector failed on one object; other detectors go on."""


class ScanCancelled(AegisError):
    """The scan was cancelled by the caller."""


class QuarantineError(AegisError):
    """A quarantine operation (quarantine, restore, delete, purge) could not be done.

    Raised before anything irreversible happened: the file is still where it was.
    """


class UnsafePathError(QuarantineError):
    """A path holds a symbolic link, or the file was replaced since it was scanned."""


class ItemNotFound(QuarantineError):
    """No quarantined item has this id (or the id prefix is ambiguous)."""


class VaultIntegrityError(QuarantineError):
    """A vault item failed authentication: it was damaged or altered, or the key is wrong."""


class KeyStoreError(QuarantineError):
    """The vault key cannot be read or stored."""


class HistoryError(AegisError):
    """The detection history cannot be read or written."""


class MonitorError(AegisError):
    """Real-time protection could not start, or could not watch part of what it should."""


class WatchLimitError(MonitorError):
    """The operating system's limit on file watches (inotify ``max_user_watches``) was hit."""


class BehaviourRulesError(ContentError):
    """The behaviour rules file of the process monitor is missing or invalid."""


class PrivacyError(AegisError):
    """Consent could not be read, recorded or given for a purpose."""


class UnknownPurpose(PrivacyError):
    """No consent purpose has this id."""


class ConsentStoreError(PrivacyError):
    """The consent file cannot be read or written."""


class ConsentRequired(PrivacyError):
    """Something would leave this machine for a purpose the user has not allowed."""

    def __init__(self, purpose: str, title: str = "") -> None:
        super().__init__(
            f"{title or purpose} is off, so nothing was sent; allow it with "
            f"'aegis consent grant {purpose}' or in the tray app's Settings > Privacy"
        )
        self.purpose = purpose


class LookupFailed(PrivacyError):
    """A cloud hash look-up could not be made (no consent, no endpoint, server down, pin
    mismatch, a broken answer); the local verdict stands."""


class SendFailed(PrivacyError):
    """Queued records or a sample could not be sent; nothing was lost from the outbox."""


class NetworkError(AegisError):
    """A network call failed: connection, TLS, timeout, HTTP status, or a limit."""


class TLSVerificationError(NetworkError):
    """The server's certificate chain or host name did not verify."""


class PinMismatch(TLSVerificationError):
    """The server's public key (SPKI SHA-256) matches none of the configured pins."""


class ClientCertError(NetworkError):
    """The client certificate or its key (or the key's passphrase) cannot be used."""


class NetTimeout(NetworkError):
    """The server did not answer (connect or read) in time."""


class ResponseTooLarge(NetworkError):
    """A response was larger than the hard cap for that call."""


class HTTPStatusError(NetworkError):
    """The server answered with an HTTP error status."""

    def __init__(self, status: int, url: str, detail: str = "") -> None:
        super().__init__(f"HTTP {status} from {url}{': ' + detail if detail else ''}")
        self.status = status
        self.url = url


class UpdateError(AegisError):
    """An update could not be checked, downloaded, verified or applied."""


class UpdateRefused(UpdateError):
    """Update content or metadata failed verification (signature, hash, expiry, rollback)."""


class UpdateFailed(UpdateError):
    """An update could not be completed (network, disk, test-load); nothing was switched."""
