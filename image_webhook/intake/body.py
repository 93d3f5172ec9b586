"""Reading the request body: media type, framing, size, Content-Encoding, and a deadline for slow clients.

One reader for every framing: the body is read from `wsgi.input` in pieces, up to its Content-Length or, chunked,
to its end, and never past MAX_CONTENT_LENGTH + 1 bytes, so a body over the limit is refused (413), never cut
and processed. A body gzipped on the wire (Content-Encoding) is decoded under the same limit.

`read_body` returns the DECODED body, and the signature is verified on it: Standard Webhooks signs the payload
the sender serialised, the JSON text, before any Content-Encoding is applied to it for the trip.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from flask import request
from gunicorn.http.errors import ParseException
from werkzeug import exceptions
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, RequestTimeout, UnsupportedMediaType

from ..domain.values import Outcome

PIECE = 64 * 1024  # bytes asked of the stream at a time
ONLY_CHUNKED = "Transfer-Encoding non pris en charge : seul chunked est accepté"  # gunicorn's 501 says it too
PLAIN_JSON = frozenset({"application/json", "application/json; charset=utf-8", "application/json;charset=utf-8"})


class MalformedBody(BadRequest):
    """400: a chunked framing or a gzip stream that cannot be undone; `outcome` labels it in the metrics."""

    def __init__(self, what: str, outcome: Outcome) -> None:
        super().__init__(f"Corps de requête mal formé ({what})")
        self.outcome = outcome


class UnsupportedEncoding(UnsupportedMediaType):
    """415 for a Content-Encoding other than identity or gzip; Accept-Encoding names those accepted (RFC 9110)."""

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("Accept-Encoding", "gzip")]


class UnsupportedTransferCoding(exceptions.NotImplemented):
    """501 for a transfer coding before chunked (gzip, deflate...): gunicorn passes it on without undoing it."""

    description = ONLY_CHUNKED
    outcome = Outcome.INVALID_FRAMING


def read_body(deadlines: BodyDeadlines, limit: int) -> bytes:
    """Return the body, decoded: 415 unless JSON in UTF-8 with no coding but gzip, 501 for a transfer coding but
    chunked, 413 past `limit` bytes (MAX_CONTENT_LENGTH, sent or decoded), 400 for a malformed chunked or gzip
    body, 408 if it is not all in within BODY_TIMEOUT."""
    environ = request.environ
    if environ.get("CONTENT_TYPE") not in PLAIN_JSON:  # the usual spellings pass without parsing the header
        charset = request.mimetype_params.get("charset", "utf-8").lower()
        if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType()
    encoding = _codings(environ.get("HTTP_CONTENT_ENCODING"))
    gzipped = encoding in (["gzip"], ["x-gzip"])
    if not gzipped and encoding not in ([], ["identity"]):  # deflate, br, stacked codings...
        raise UnsupportedEncoding()
    if _codings(environ.get("HTTP_TRANSFER_ENCODING")) not in ([], ["chunked"]):
        raise UnsupportedTransferCoding()
    length = request.content_length
    if length is not None and length > limit:
        raise RequestEntityTooLarge()  # before reading a byte of it
    raw = _read(deadlines, length, limit)
    return _decode(raw, limit) if gzipped else raw


def _read(deadlines: BodyDeadlines, length: int | None, limit: int) -> bytes:
    """The body as sent, within BODY_TIMEOUT (408) and `limit` (413); 400 for a malformed chunked framing."""
    environ = request.environ
    if length is None and not environ.get("wsgi.input_terminated"):
        return b""  # nothing frames the body: reading it could wait for ever (werkzeug's safe fallback)
    started = time.monotonic()
    try:
        with deadlines.watching(environ.get("gunicorn.socket")):
            return _read_limited(environ["wsgi.input"], length, limit)
    except OSError:  # gunicorn's NoMoreData, a recv that timed out or was shut at the deadline
        raise RequestTimeout() from None
    except (ParseException, ValueError):  # gunicorn's chunked parser, or another server's
        if time.monotonic() - started >= deadlines.timeout:  # the deadline cut the body mid-chunk
            raise RequestTimeout() from None
        raise MalformedBody("chunked", Outcome.INVALID_FRAMING) from None


def _codings(value: str | None) -> list[str]:
    """The codings a Content-Encoding or Transfer-Encoding header lists, lowercased (gunicorn joins repeats)."""
    return [coding.strip().lower() for coding in value.split(",") if coding.strip()] if value else []


def _read_limited(stream: IO[bytes], length: int | None, limit: int) -> bytes:
    """Read all `length` bytes announced (fewer: 408) or, without a length, up to the end of the stream;
    past `limit` bytes it stops reading and answers 413."""
    wanted = limit + 1 if length is None else length
    pieces, size = [], 0
    while size < wanted:
        piece = stream.read(min(PIECE, wanted - size))
        if not piece:
            break
        pieces.append(piece)
        size += len(piece)
    if size > limit:
        raise RequestEntityTooLarge()
    if length is not None and size < length:
        raise RequestTimeout()  # gunicorn hands over a body cut short without a word
    return b"".join(pieces)


def _decode(raw: bytes, limit: int) -> bytes:
    """Undo gzip: 413 past `limit` decoded bytes, 400 for a corrupt or truncated stream. `max_length` stops
    inflating there, so a zip bomb costs `limit` bytes of memory and the CPU to produce them, no more."""
    inflater = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer around the deflate data
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise MalformedBody("gzip", Outcome.INVALID_ENCODING) from None
    if len(body) > limit:
        raise RequestEntityTooLarge()
    if not inflater.eof or inflater.unused_data:  # cut short, or bytes after the gzip member
        raise MalformedBody("gzip", Outcome.INVALID_ENCODING)
    return body


class BodyDeadlines(threading.Thread):
    """Shuts the reading side of sockets whose body is late, so a dribbling client frees its thread.

    gunicorn sets no deadline on reading a body: a client that stops sending, lies about its Content-Length
    or sends a byte a second would otherwise hold a worker thread for good.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(name="body-deadlines", daemon=True)
        self.timeout = timeout  # BODY_TIMEOUT
        self.tick = min(0.5, timeout / 4)  # how late past its deadline a body may still be read
        self._watched: dict[object, tuple[float, socket.socket]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @contextmanager
    def watching(self, sock: socket.socket | None) -> Iterator[None]:
        """Bound the reads of `sock` inside the block to `timeout` seconds (None: not under gunicorn, the
        test client, nothing to wait for)."""
        if sock is None:
            yield
            return
        sock.settimeout(self.timeout)  # a silent client: each recv gives up; gunicorn resets it afterwards
        ticket = self.watch(sock)
        try:
            yield
        finally:
            self.forget(ticket)

    def watch(self, sock: socket.socket) -> object:
        """Watch `sock` until `forget(ticket)`; past `timeout` seconds its reads end."""
        ticket = object()
        with self._lock:
            self._watched[ticket] = (time.monotonic() + self.timeout, sock)
        return ticket

    def forget(self, ticket: object) -> None:
        with self._lock:
            self._watched.pop(ticket, None)

    def run(self) -> None:
        while not self._stopping.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [t for t, (deadline, _) in self._watched.items() if deadline <= now]
                sockets = [self._watched.pop(t)[1] for t in late]
            for sock in sockets:
                with suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RD)  # the blocked recv returns: the body ends there

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        self.join(timeout)
