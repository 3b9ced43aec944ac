"""The vault key: random, per install, kept in the OS keyring - or, where no keyring works,
in a file only the user can read, and never without saying so.

``vault.json`` in the vault folder (not secret) records the install id, where the key lives
(``keyring`` or ``file``) and a fingerprint of the key, so that a missing or wrong key is
reported as such instead of a fresh key being made silently (which would orphan every item).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import keyring.backends.null
from keyring.backend import KeyringBackend

from ..atomic import atomic_write, fsync_dir
from ..bounded_io import load_json_file
from ..errors import KeyStoreError
from .item_file import key_check
from .safe_fs import printable

SERVICE = "aegis"
KEY_BYTES = 32
INFO_FILE = "vault.json"
_MAX_INFO = 64 * 1024

Warn = Callable[[str], None]


def _describe(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


@dataclass(frozen=True)
class KeyStatus:
    """Where the vault key lives: ``keyring``, ``file`` (then ``path`` and the
    ``fallback_reason``), ``none`` (no key made yet) or ``unknown`` (``problem`` says why)."""

    where: str
    path: str | None
    fallback_reason: str | None
    problem: str | None = None

    @property
    def warning(self) -> str | None:
        """The line a status view shows, or None when all is well."""
        if self.where == "file":
            return (
                f"the quarantine vault key is kept in a file, {self.path} (readable only by "
                f"you): {self.fallback_reason}"
            )
        if self.where == "unknown":
            return self.problem
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "where": self.where,
            "path": self.path,
            "fallback_reason": self.fallback_reason,
            "problem": self.problem,
            "warning": self.warning,
        }


class KeyStore:
    """Loads or creates the vault key (32 random bytes).

    ``backend`` is the keyring to use (default: :func:`keyring.get_keyring`); pass
    ``use_keyring=False`` to keep the key in ``key_file`` directly. ``warn`` is told whenever
    the key is, or is about to be, in a file instead of the OS keyring.
    """

    def __init__(
        self,
        vault_dir: Path,
        key_file: Path,
        *,
        warn: Warn,
        backend: KeyringBackend | None = None,
        use_keyring: bool = True,
    ) -> None:
        self.vault_dir = vault_dir
        self.key_file = key_file
        self._warn = warn
        self._backend = backend
        self._use_keyring = use_keyring
        self._key: bytes | None = None
        self.location = ""
        """Where the loaded key lives, e.g. ``keyring:...SecretService.Keyring``."""
        self._fallback_reason: str | None = None

    # -- vault.json ---------------------------------------------------------------------------

    @property
    def info_file(self) -> Path:
        return self.vault_dir / INFO_FILE

    def _read_info(self) -> dict[str, Any]:
        try:
            info = load_json_file(self.info_file, max_bytes=_MAX_INFO)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"cannot read {printable(self.info_file)}: {exc}") from exc
        if not isinstance(info, dict):
            raise KeyStoreError(f"{printable(self.info_file)} is damaged")
        return info

    def _write_info(self, info: dict[str, Any]) -> None:
        atomic_write(self.info_file, json.dumps(info, indent=2, sort_keys=True).encode())

    def _info_with_id(self) -> dict[str, Any]:
        info = self._read_info()
        if not isinstance(info.get("install_id"), str):
            info = {"format": 1, "install_id": secrets.token_hex(16)}
            self._write_info(info)
        return info

    # -- the key ------------------------------------------------------------------------------

    def key(self) -> bytes:
        """The vault key; created on first use. The caller holds the vault lock."""
        if self._key is None:
            self._key = self._load()
        return self._key

    def _load(self) -> bytes:
        info = self._info_with_id()
        source = info.get("key_source")
        if source == "file" or (source is None and self.key_file.exists()):
            # Said once, when the key file was made; `aegis status` keeps showing it.
            key = self._read_key_file()
        elif source == "keyring":
            key = self._keyring_get_existing(info)
        else:
            key = self._create(info)
        expected = info.get("key_check")
        if expected is not None and expected != key_check(key):
            raise KeyStoreError(
                f"the vault key from {self.location} does not match this vault "
                f"({printable(self.vault_dir)}); its items cannot be decrypted with it"
            )
        if expected is None or info.get("key_source") is None:
            info["key_check"] = key_check(key)
            info["key_source"] = self.location.split(":", 1)[0]
            if self._fallback_reason is not None:
                info["key_fallback_reason"] = self._fallback_reason
            self._write_info(info)
        return key

    def status(self) -> KeyStatus:
        """Where the vault key lives and why, from ``vault.json`` alone: never creates a key,
        never asks the keyring (for ``aegis status`` and the status window)."""
        try:
            info = self._read_info()
        except KeyStoreError as exc:
            return KeyStatus("unknown", None, None, problem=str(exc))
        source = info.get("key_source")
        reason = info.get("key_fallback_reason")
        reason = reason if isinstance(reason, str) else None
        if source == "keyring":
            return KeyStatus("keyring", None, None)
        if source == "file" or (source is None and self.key_file.exists()):
            return KeyStatus(
                "file",
                str(self.key_file),
                reason or "no OS keyring was usable when the vault was created",
            )
        return KeyStatus("none", None, None)

    def _username(self, info: dict[str, Any]) -> str:
        return f"quarantine-key-{info['install_id']}"

    def _backend_or_default(self) -> KeyringBackend:
        if self._backend is not None:
            return self._backend
        try:
            return keyring.get_keyring()
        except Exception:  # a broken keyring configuration is no keyring, never a crash
            return keyring.backends.fail.Keyring()  # type: ignore[no-untyped-call]

    def _keyring_get_existing(self, info: dict[str, Any]) -> bytes:
        backend = self._backend_or_default()
        self.location = f"keyring:{_describe(backend)}"
        try:
            stored = backend.get_password(SERVICE, self._username(info))
        except Exception as exc:
            raise KeyStoreError(
                f"the vault key is in the OS keyring, which cannot be read now ({exc}); "
                "unlock or start the keyring and try again"
            ) from exc
        if stored is None:
            raise KeyStoreError(
                "the vault key is missing from the OS keyring "
                f"({_describe(backend)}, entry {SERVICE}/{self._username(info)}); "
                f"the items in {printable(self.vault_dir)} cannot be decrypted. Move that "
                "folder aside to start a new vault."
            )
        return _decode_key(stored, "the OS keyring")

    def _create(self, info: dict[str, Any]) -> bytes:
        if not self._use_keyring:
            self._fallback_reason = "keyring use is turned off in the settings"
            self._warn(
                "the quarantine vault key will be kept in a file, "
                f"{printable(self.key_file)} (readable only by you): keyring use is turned off"
            )
            return self._create_key_file()
        backend = self._backend_or_default()
        reason = self._unusable(backend)
        if reason is None:
            username = self._username(info)
            try:
                existing = backend.get_password(SERVICE, username)
                if existing is not None:
                    key = _decode_key(existing, "the OS keyring")
                else:
                    key = secrets.token_bytes(KEY_BYTES)
                    encoded = base64.b64encode(key).decode("ascii")
                    backend.set_password(SERVICE, username, encoded)
                    if backend.get_password(SERVICE, username) != encoded:
                        raise KeyStoreError("the keyring did not keep the key it was given")
                self.location = f"keyring:{_describe(backend)}"
                return key
            except Exception as exc:
                reason = f"{_describe(backend)} failed: {exc}"
        self._fallback_reason = f"no usable OS keyring ({reason})"
        self._warn(
            f"no usable OS keyring ({reason}); the quarantine vault key will be kept in a "
            f"file, {printable(self.key_file)}, readable only by you. Install and unlock a "
            "keyring (e.g. GNOME Keyring or KWallet) for better protection."
        )
        return self._create_key_file()

    @staticmethod
    def _unusable(backend: KeyringBackend) -> str | None:
        if isinstance(backend, keyring.backends.fail.Keyring):
            return "no keyring backend is available"
        if isinstance(backend, keyring.backends.null.Keyring):
            return "the keyring backend is the null keyring, which stores nothing"
        return None

    # -- the key file -------------------------------------------------------------------------

    def _create_key_file(self) -> bytes:
        self.location = f"file:{self.key_file}"
        key = secrets.token_bytes(KEY_BYTES)
        folder = self.key_file.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".vault-key.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(base64.b64encode(key) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, self.key_file)  # never replaces a key file another process made
        except FileExistsError:
            return self._read_key_file()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fsync_dir(folder)
        return key

    def _read_key_file(self) -> bytes:
        self.location = f"file:{self.key_file}"
        shown = printable(self.key_file)
        try:
            fd = os.open(self.key_file, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise KeyStoreError(f"cannot open the vault key file {shown}: {exc}") from exc
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise KeyStoreError(f"the vault key file {shown} is not a regular file")
            if st.st_uid != os.getuid():
                raise KeyStoreError(f"the vault key file {shown} belongs to another user")
            if stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fh.fileno(), 0o600)
                self._warn(f"the vault key file {shown} was readable by others; now 0600")
            data = fh.read(1024)
        return _decode_key(data.decode("ascii", "replace").strip(), f"the key file {shown}")


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise KeyStoreError(f"the vault key in {where} is damaged") from exc
    if len(key) != KEY_BYTES:
        raise KeyStoreError(f"the vault key in {where} is damaged (wrong length)")
    return key
