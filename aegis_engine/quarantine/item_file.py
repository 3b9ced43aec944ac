"""The on-disk format of one vault item: content and metadata, encrypted and authenticated.

Layout (all integers big-endian)::

    header    MAGIC(8) | item id(8) | salt(16) | nonce prefix(7) | chunk size(4)
    content   one or more segments: length(4) | AES-GCM ciphertext of one chunk
    metadata  one segment: length(4) | AES-GCM ciphertext of the JSON metadata
    footer    offset of the metadata segment(8) | END_MAGIC(8)

Every item gets its own AES-256 key, derived with HKDF-SHA256 from the vault key and a
random per-item salt, and its own random nonce prefix. The nonce of content chunk ``i`` is
``prefix | i | last-flag`` and the metadata uses a counter no chunk can reach, so chunks
cannot be reordered, dropped, truncated or swapped between items or with the metadata
without failing authentication. The header is authenticated data of every segment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..bounded_io import loads_bounded
from ..errors import VaultIntegrityError

MAGIC = b"AEGISQV1"
END_MAGIC = b"AEGISEND"
DEFAULT_CHUNK_SIZE = 1024 * 1024
_TAG = 16
_HEADER = struct.Struct(">8s8s16s7sI")
_FOOTER = struct.Struct(">Q8s")
_LEN = struct.Struct(">I")
_META_COUNTER = 0xFFFFFFFF
_MAX_META = 16 * 1024 * 1024
_KDF_INFO = b"aegis quarantine item v1"


def key_check(master_key: bytes) -> str:
    """A non-secret fingerprint of the vault key: tells a wrong key from a damaged item."""
    return hmac.new(master_key, b"aegis vault key check v1", hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Header:
    item_id: str
    salt: bytes
    nonce_prefix: bytes
    chunk_size: int

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC, bytes.fromhex(self.item_id), self.salt, self.nonce_prefix, self.chunk_size
        )

    @classmethod
    def new(cls, item_id: str, chunk_size: int) -> Header:
        return cls(item_id, os.urandom(16), os.urandom(7), chunk_size)

    @classmethod
    def read(cls, fh: BinaryIO) -> Header:
        raw = fh.read(_HEADER.size)
        if len(raw) != _HEADER.size:
            raise VaultIntegrityError("vault item is truncated (no header)")
        magic, raw_id, salt, prefix, chunk_size = _HEADER.unpack(raw)
        if magic != MAGIC:
            raise VaultIntegrityError("not a vault item (bad magic)")
        if not 0 < chunk_size <= 64 * 1024 * 1024:
            raise VaultIntegrityError("vault item header is damaged (chunk size)")
        return cls(raw_id.hex(), salt, prefix, chunk_size)

    def aead(self, master_key: bytes) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=self.salt, info=_KDF_INFO)
        return AESGCM(hkdf.derive(master_key))

    def nonce(self, counter: int, flag: int) -> bytes:
        return self.nonce_prefix + struct.pack(">IB", counter, flag)


@dataclass(frozen=True)
class WrittenContent:
    size: int
    sha256: str


def write_item(
    out: BinaryIO,
    source: BinaryIO,
    *,
    master_key: bytes,
    item_id: str,
    make_metadata: Callable[[WrittenContent], dict[str, Any]],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[], None] | None = None,
) -> WrittenContent:
    """Encrypt ``source`` (read to its end) into ``out``, then the metadata that
    ``make_metadata`` builds from the size and SHA-256 of what was actually read."""
    header = Header.new(item_id, chunk_size)
    aad = header.pack()
    aead = header.aead(master_key)
    out.write(aad)
    digest = hashlib.sha256()
    size = 0
    counter = 0
    current = source.read(chunk_size)
    while True:
        following = source.read(chunk_size) if len(current) == chunk_size else b""
        last = not following
        digest.update(current)
        size += len(current)
        ct = aead.encrypt(header.nonce(counter, 1 if last else 0), current, aad)
        out.write(_LEN.pack(len(ct)) + ct)
        counter += 1
        if counter >= _META_COUNTER:
            raise VaultIntegrityError("file too large for the vault format")
        if on_chunk is not None:
            on_chunk()
        if last:
            break
        current = following
    content = WrittenContent(size, digest.hexdigest())
    meta_offset = out.tell()
    meta = json.dumps(make_metadata(content), sort_keys=True).encode()
    ct = aead.encrypt(header.nonce(_META_COUNTER, 2), meta, aad)
    out.write(_LEN.pack(len(ct)) + ct)
    out.write(_FOOTER.pack(meta_offset, END_MAGIC))
    return content


def _segment(fh: BinaryIO, limit: int) -> bytes:
    raw = fh.read(_LEN.size)
    if len(raw) != _LEN.size:
        raise VaultIntegrityError("vault item is truncated")
    (length,) = _LEN.unpack(raw)
    if length < _TAG or length > limit + _TAG:
        raise VaultIntegrityError("vault item is damaged (segment length)")
    data = fh.read(length)
    if len(data) != length:
        raise VaultIntegrityError("vault item is truncated")
    return data


def _metadata_offset(fh: BinaryIO) -> tuple[int, int]:
    """(offset of the metadata segment, offset of the footer), from the footer."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end < _HEADER.size + _FOOTER.size:
        raise VaultIntegrityError("vault item is truncated")
    fh.seek(end - _FOOTER.size)
    offset, end_magic = _FOOTER.unpack(fh.read(_FOOTER.size))
    if end_magic != END_MAGIC or not _HEADER.size <= offset < end - _FOOTER.size:
        raise VaultIntegrityError("vault item is truncated or damaged (footer)")
    return offset, end - _FOOTER.size


def read_metadata(fh: BinaryIO, master_key: bytes) -> tuple[Header, dict[str, Any]]:
    """Authenticate and return the header and metadata without reading the content."""
    fh.seek(0)
    header = Header.read(fh)
    offset, end = _metadata_offset(fh)
    fh.seek(offset)
    ct = _segment(fh, _MAX_META)
    if fh.tell() != end:
        raise VaultIntegrityError("vault item is damaged (metadata length)")
    try:
        raw = header.aead(master_key).decrypt(header.nonce(_META_COUNTER, 2), ct, header.pack())
    except InvalidTag:
        raise VaultIntegrityError(
            "vault item metadata failed authentication (damaged, altered, or a different key)"
        ) from None
    try:
        meta = loads_bounded(raw, max_bytes=len(raw) + 1)
    except ValueError as exc:
        raise VaultIntegrityError(f"vault item metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise VaultIntegrityError("vault item metadata is not an object")
    return header, meta


def iter_content(
    fh: BinaryIO, master_key: bytes, *, on_chunk: Callable[[], None] | None = None
) -> Iterator[bytes]:
    """Yield the authenticated plaintext chunks; raise VaultIntegrityError on any damage.

    A chunk is yielded only after its tag is verified, but a caller that must not act on a
    truncated or altered stream has to consume the iterator to its end first.
    """
    content_end, _ = _metadata_offset(fh)
    fh.seek(0)
    header = Header.read(fh)
    aad = header.pack()
    aead = header.aead(master_key)
    counter = 0
    while True:
        if fh.tell() >= content_end:
            raise VaultIntegrityError("vault item is truncated (content ends early)")
        ct = _segment(fh, header.chunk_size)
        try:
            plain = aead.decrypt(header.nonce(counter, 0), ct, aad)
            last = False
        except InvalidTag:
            try:
                plain = aead.decrypt(header.nonce(counter, 1), ct, aad)
                last = True
            except InvalidTag:
                raise VaultIntegrityError(
                    f"vault item content failed authentication at chunk {counter}"
                ) from None
        if last and fh.tell() != content_end:
            raise VaultIntegrityError("vault item is damaged (data after the last chunk)")
        yield plain
        if on_chunk is not None:
            on_chunk()
        counter += 1
        if last:
            return
        if counter >= _META_COUNTER:
            raise VaultIntegrityError("vault item is damaged (no last chunk)")


def verify_item(fh: BinaryIO, master_key: bytes) -> tuple[dict[str, Any], WrittenContent]:
    """Decrypt everything; check that the content matches the size and SHA-256 in the metadata."""
    _, meta = read_metadata(fh, master_key)
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_content(fh, master_key):
        digest.update(chunk)
        size += len(chunk)
    content = WrittenContent(size, digest.hexdigest())
    if meta.get("size") != size or meta.get("sha256") != content.sha256:
        raise VaultIntegrityError("vault item content does not match its metadata")
    return meta, content
