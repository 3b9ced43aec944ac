"""How TUF and the update client get bytes: over the network layer, or from a folder.

:class:`NetFetcher` is python-tuf's ``FetcherInterface`` on :class:`~aegis_engine.net.NetClient`
(so pins, client certificates, proxies, limits and consent apply to updates); tuf's own
urllib3 fetcher is never used. :class:`DirFetcher` reads a repository copied to a folder or a
USB stick (``aegis update --from DIR``), with the same verification above it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from tuf.api import exceptions as tuf_exc
from tuf.ngclient.fetcher import FetcherInterface

from ..errors import HTTPStatusError, ResponseTooLarge
from ..net import NetClient

__all__ = ["OFFLINE_BASE", "DirFetcher", "NetFetcher", "RangeFetcher"]

PURPOSE = "update-checks"
OFFLINE_BASE = "aegis-offline:/"
MAX_ANY = 512 * 1024 * 1024


class RangeFetcher(FetcherInterface):
    """A fetcher that counts bytes and can resume (``start`` > 0)."""

    bytes_downloaded = 0

    def open_range(self, url: str, start: int, max_bytes: int) -> tuple[int, Iterator[bytes]]:
        """(offset the body starts at, chunks) for ``url`` from ``start`` on."""
        raise NotImplementedError

    def _fetch(self, url: str) -> Iterator[bytes]:
        _, chunks = self.open_range(url, 0, MAX_ANY)
        return chunks


class NetFetcher(RangeFetcher):
    def __init__(self, net: NetClient) -> None:
        self.net = net
        self.bytes_downloaded = 0

    def open_range(self, url: str, start: int, max_bytes: int) -> tuple[int, Iterator[bytes]]:
        headers: Mapping[str, str] = {"Range": f"bytes={start}-"} if start else {}
        try:
            resp = self.net.open("GET", url, purpose=PURPOSE, max_bytes=max_bytes, headers=headers)
        except HTTPStatusError as exc:
            if exc.status == 416 and start:
                return start, iter(())
            raise tuf_exc.DownloadHTTPError(str(exc), exc.status) from exc
        offset = start if resp.status == 206 else 0

        def chunks() -> Iterator[bytes]:
            try:
                for chunk in resp.iter_chunks():
                    self.bytes_downloaded += len(chunk)
                    yield chunk
            except ResponseTooLarge as exc:
                raise tuf_exc.DownloadLengthMismatchError(str(exc)) from exc

        return offset, chunks()


class DirFetcher(RangeFetcher):
    """Serves ``aegis-offline:/<path>`` from ``root``; never leaves that folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.bytes_downloaded = 0

    def open_range(self, url: str, start: int, max_bytes: int) -> tuple[int, Iterator[bytes]]:
        if not url.startswith(OFFLINE_BASE):
            raise tuf_exc.DownloadError(f"not an offline address: {url}")
        path = (self.root / url[len(OFFLINE_BASE) :]).resolve()
        if self.root not in path.parents:
            raise tuf_exc.DownloadError(f"outside the repository folder: {url}")
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise tuf_exc.DownloadHTTPError(f"{path} does not exist", 404) from exc
        except OSError as exc:
            raise tuf_exc.DownloadError(f"cannot read {path}: {exc}") from exc
        size = os.fstat(fh.fileno()).st_size
        if start >= size:
            start = size
        fh.seek(start)

        def chunks() -> Iterator[bytes]:
            read = 0
            with fh:
                while chunk := fh.read(1 << 16):
                    read += len(chunk)
                    if read > max_bytes:
                        raise tuf_exc.DownloadLengthMismatchError(f"{path} is too large")
                    self.bytes_downloaded += len(chunk)
                    yield chunk

        return start, chunks()
