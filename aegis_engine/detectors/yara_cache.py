"""The compiled-rules cache, sealed: integrity checked before ``yara.load``, no plaintext.

Compiling a large rule pack takes seconds, so compiled rules are cached under
``AegisPaths.compiled_rules_dir`` as ``<version>.yarc``. A compiled rule set holds every
rule string as raw bytes, so a plaintext cache is matched by the very rules it holds (Aegis
flagged its own cache), and YARA's documentation warns never to load compiled rules from an
untrusted source: a crafted file can crash the loader, and the cache lives in a
user-writable folder.

So each cache file is sealed with AES-256-GCM (``cryptography``) under a random per-profile
key kept in a 0600 file in the *config* folder (``AegisPaths.rules_cache_key_file``), not
beside the cache. The associated data binds the file to its version (the rule fingerprint),
so a sealed file cannot be swapped for another. A file is decrypted and its tag verified
before anything reaches ``yara.load``; any failure (changed, truncated, foreign, made
with another key) drops the file, warns once, and the caller recompiles. The ciphertext
matches no rule, wherever the file is copied.

File layout: ``MAGIC | nonce (12) | AES-GCM(meta length (4, big-endian) | meta JSON |
compiled rules)``; meta holds the version, the yara-python version and the broken files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write

MAGIC = b"AEGIS-YARC\x02"
CACHE_SUFFIX = ".yarc"
CACHE_KEEP = 4
"""Compiled rule sets kept in the cache folder (the newest by use)."""
STALE_TMP_SECONDS = 3600.0
_KEY_BYTES = 32
_NONCE_BYTES = 12
_MAX_META = 16 * 1024 * 1024

Broken = list[tuple[str, str]]
"""``(namespace, message)`` of every rule file that was skipped when compiling."""


class SealedRulesCache:
    """Loads and stores sealed compiled rule sets; every fault means "not cached"."""

    def __init__(self, folder: Path, key_file: Path, warn: Callable[[str], None]) -> None:
        self.folder = folder
        self.key_file = key_file
        self._warn = warn

    def path_for(self, version: str) -> Path:
        return self.folder / f"{version}{CACHE_SUFFIX}"

    # Key ------------------------------------------------------------------------------------
    def _read_key(self) -> bytes | None:
        try:
            key = self.key_file.read_bytes()
        except OSError:
            return None
        return key if len(key) == _KEY_BYTES else None

    def _key(self, create: bool) -> bytes | None:
        key = self._read_key()
        if key is not None or not create:
            return key
        # Create it so that two processes starting together agree on one key: write a temp
        # file, then link it into place (fails if another process won; then read theirs).
        # A damaged key (wrong length) is replaced: the caches it sealed are recompiled.
        try:
            self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(
                prefix=f".{self.key_file.name}.", suffix=".tmp", dir=self.key_file.parent
            )
            try:
                os.write(fd, secrets.token_bytes(_KEY_BYTES))
                os.fsync(fd)
                os.close(fd)
                os.chmod(tmp, 0o600)
                if self.key_file.exists():
                    os.replace(tmp, self.key_file)  # damaged key
                else:
                    with contextlib.suppress(FileExistsError):
                        os.link(tmp, self.key_file)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as exc:
            self._warn(f"the compiled YARA rules cannot be cached (key {self.key_file}: {exc})")
            return None
        return self._read_key()

    # Load / save ----------------------------------------------------------------------------
    def load(self, version: str) -> tuple[Any, Broken] | None:
        # Imported here: only a process that loads rules needs them (not the tray app's).
        import yara
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        """The rules cached for ``version`` and their broken files, or None (recompile)."""
        path = self.path_for(version)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        key = self._key(create=False)
        problem: str | None = None
        rules: Any = None
        broken: Broken = []
        if key is None:
            problem = "its key is missing"
        elif not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _NONCE_BYTES + 16:
            problem = "it is not a sealed Aegis cache"
        else:
            nonce = blob[len(MAGIC) : len(MAGIC) + _NONCE_BYTES]
            try:
                plain = AESGCM(key).decrypt(
                    nonce, blob[len(MAGIC) + _NONCE_BYTES :], MAGIC + version.encode()
                )
            except InvalidTag:
                problem = "its integrity check failed"
            else:
                try:
                    rules, broken = _unpack(plain, version)
                except (ValueError, KeyError, TypeError, yara.Error) as exc:
                    problem = f"it could not be loaded ({exc})"
        if problem is not None:
            self._warn(
                f"compiled YARA rules cache {path.name} was not loaded: {problem}; "
                "the rules were compiled again"
            )
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # mark as recently used for pruning
        return rules, broken

    def save(self, version: str, rules: Any, broken: Broken) -> None:
        import yara
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        key = self._key(create=True)
        if key is None:
            return
        meta = json.dumps({"version": version, "yara": yara.__version__, "broken": broken}).encode(
            "utf-8"
        )
        try:
            buf = io.BytesIO()
            rules.save(file=buf)
            plain = len(meta).to_bytes(4, "big") + meta + buf.getvalue()
            nonce = secrets.token_bytes(_NONCE_BYTES)
            sealed = AESGCM(key).encrypt(nonce, plain, MAGIC + version.encode())
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write(self.path_for(version), MAGIC + nonce + sealed)
        except (OSError, yara.Error) as exc:
            self._warn(f"compiled YARA rules could not be cached: {exc}")
            return
        self.prune(version)

    def prune(self, current: str) -> None:
        """Keep the newest sealed files; drop anything else (old plaintext caches and their
        ``.json`` sidecars from before the cache was sealed, stale temp files)."""
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return
        now = time.time()
        sealed: list[tuple[float, str]] = []
        for entry in entries:
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                continue
            name = entry.name
            if name.startswith(".") and name.endswith(".tmp"):
                if now - mtime > STALE_TMP_SECONDS:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
            elif name.endswith(".json") or (name.endswith(CACHE_SUFFIX) and not _sealed(entry)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif name.endswith(CACHE_SUFFIX):
                sealed.append((mtime, name[: -len(CACHE_SUFFIX)]))
        sealed.sort(reverse=True)
        keep = {current} | {stem for _, stem in sealed[:CACHE_KEEP]}
        for _, stem in sealed:
            if stem not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(self.path_for(stem))


def _sealed(entry: os.DirEntry[str]) -> bool:
    try:
        with open(entry.path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def _unpack(plain: bytes, version: str) -> tuple[Any, Broken]:
    import yara

    size = int.from_bytes(plain[:4], "big")
    if size > _MAX_META or size > len(plain) - 4:
        raise ValueError("bad meta length")
    meta = json.loads(plain[4 : 4 + size].decode("utf-8"))
    if not isinstance(meta, dict) or meta.get("version") != version:
        raise ValueError("meta does not match")
    broken: Broken = []
    for entry in meta["broken"]:
        ns, message = entry
        if not isinstance(ns, str) or not isinstance(message, str):
            raise ValueError("bad meta entry")
        broken.append((ns, message))
    rules = yara.load(file=io.BytesIO(plain[4 + size :]))
    return rules, broken
