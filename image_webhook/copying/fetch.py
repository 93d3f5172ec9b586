"""The transfer of one image: a GET sent to the address its URL was checked on, the body streamed into a file
while hashed, bounded in size and in time, every redirect checked again."""

from __future__ import annotations

import hashlib
import http.client
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urljoin

from .exchange import Clock, Exchange, FetchFailed
from .sources import Sources, Unresolved

if TYPE_CHECKING:
    from ..domain.settings import Settings

__all__ = ["FetchFailed", "Fetched", "Fetcher"]

REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Fetched:
    """A body fetched whole: its size, its SHA-256 (hex), its announced type, the URL it came from at last."""

    size: int
    sha256: str
    content_type: str | None
    url: str


class Fetcher:
    """Fetches images from the sources the policy allows, within IMAGE_MAX_BYTES and IMAGE_FETCH_TIMEOUT."""

    def __init__(
        self,
        sources: Sources,
        *,
        max_bytes: int,
        timeout: float,
        stall_timeout: float = 10.0,
        max_redirects: int = 3,
        tls: ssl.SSLContext | None = None,  # the default context (certificates and host names checked)
    ) -> None:
        self.sources = sources
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.stall_timeout = stall_timeout
        self.max_redirects = max_redirects
        self.tls = tls or ssl.create_default_context()

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        return cls(
            Sources.from_settings(settings), max_bytes=settings.image_max_bytes, timeout=settings.image_fetch_timeout
        )

    def fetch(self, url: str, into: BinaryIO) -> Fetched:
        """Stream the image at `url` into `into` (from its position; nothing is written before the final answer,
        so redirects leave it as it was). Raises Refused (no connection made) or FetchFailed; after a failure
        `into` may hold part of a body."""
        clock = Clock(self.timeout, self.stall_timeout)
        for _ in range(self.max_redirects + 1):
            try:
                target = self.sources.check(url)  # Refused goes up as it is: nothing was connected to
            except Unresolved as exc:
                raise FetchFailed(str(exc), permanent=False) from None
            with Exchange(target, clock, self.tls) as exchange:
                response = exchange.response
                if response.status in REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise FetchFailed(f"redirection {response.status} sans Location", permanent=True)
                    url = urljoin(url, location.strip())
                    continue
                self._accept(response)
                return self._stream(exchange, url, into)
        raise FetchFailed(f"plus de {self.max_redirects} redirections", permanent=True)

    def _accept(self, response: http.client.HTTPResponse) -> None:
        """Refuse an answer that is not a whole image body that fits, before reading any of it."""
        status = response.status
        if status != 200:
            # a 5xx may heal, and 408 and 429 say "ask again later"; any other answer (a 4xx, a 204, a 304…)
            # says this URL gives no image, and asking again would get the same
            raise FetchFailed(f"réponse HTTP {status}", permanent=status < 500 and status not in (408, 429))
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            # permanent: we asked for identity, so a source that compresses anyway always will; and decoding
            # would store other bytes than the source's and let a small body inflate past IMAGE_MAX_BYTES
            raise FetchFailed(f"corps encodé (Content-Encoding: {encoding}), seul identity est accepté", permanent=True)
        if response.length is not None and response.length > self.max_bytes:
            raise self._too_big()

    def _stream(self, exchange: Exchange, url: str, into: BinaryIO) -> Fetched:
        """Copy the body into `into` by chunks while hashing it, never more than IMAGE_MAX_BYTES."""
        response, announced = exchange.response, exchange.response.length
        digest, size = hashlib.sha256(), 0
        while True:
            chunk = exchange.read(size, announced)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_big()
            digest.update(chunk)
            into.write(chunk)
        exchange.ended()
        if announced is not None and size < announced:
            raise FetchFailed(f"transfert interrompu ({size} octets sur {announced})", permanent=False)
        return Fetched(size, digest.hexdigest(), response.getheader("Content-Type"), url)

    def _too_big(self) -> FetchFailed:
        return FetchFailed(f"corps au-delà de IMAGE_MAX_BYTES ({self.max_bytes} octets)", permanent=True)
