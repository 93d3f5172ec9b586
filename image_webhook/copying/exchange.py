"""One HTTP exchange with a checked target: the connection to its checked address (TLS for https), the GET,
the answer's body read by chunks, each read bounded by the stall timeout and all of it by the deadline."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from types import TracebackType

from .sources import DEFAULT_PORTS, Target

CHUNK = 64 * 1024
USER_AGENT = "image-webhook/1"


class FetchFailed(Exception):
    """A fetch that did not give the image; `permanent` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Clock:
    """The transfer's two bounds: the deadline of the whole (IMAGE_FETCH_TIMEOUT), the silence allowed a read."""

    def __init__(self, timeout: float, stall: float) -> None:
        self.timeout, self.stall = timeout, stall
        self.deadline = time.monotonic() + timeout
        self._by_deadline = False

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def arm(self, sock: socket.socket) -> None:
        """Give the next socket operation the time it may take: the stall bound, or what is left if less."""
        left = self.left()
        if left <= 0:
            raise self.expired()
        self._by_deadline = left < self.stall
        sock.settimeout(min(self.stall, left))

    def expired(self) -> FetchFailed:
        return FetchFailed(f"délai IMAGE_FETCH_TIMEOUT dépassé ({self.timeout:g} s)", permanent=False)

    def timed_out(self) -> FetchFailed:
        if self._by_deadline or self.left() <= 0:
            return self.expired()
        return FetchFailed(f"source muette depuis {self.stall:g} s", permanent=False)


class Exchange:
    """A GET to `target.address` with the URL's Host, its answer's head read; used as a context manager,
    which closes the connection whatever happened."""

    def __init__(self, target: Target, clock: Clock, tls: ssl.SSLContext) -> None:
        self.clock = clock
        self._watchdog: Watchdog | None = None
        self._open: list[socket.socket | http.client.HTTPConnection | http.client.HTTPResponse] = []
        try:
            sock = self._connect(target)
            self._open.append(sock)
            self._watchdog = Watchdog(sock, clock.left())
            if target.scheme == "https":
                # the checked address is connected to; the certificate is checked against the URL's host
                clock.arm(sock)
                sock = tls.wrap_socket(sock, server_hostname=target.host)
                self._open.append(sock)
            self.sock = sock
            self.response = self._get(target)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self.failure(exc) from None
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _connect(self, target: Target) -> socket.socket:
        """A TCP connection to the checked address, or to the host's other checked addresses in turn."""
        error: OSError = ConnectionRefusedError()
        for address in (target.address, *target.alternatives):
            # numeric: no name is resolved here, so what is connected to is what was checked
            family, kind, proto, _, sockaddr = socket.getaddrinfo(
                address, target.port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
            )[0]
            sock = socket.socket(family, kind, proto)
            try:
                self.clock.arm(sock)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def _get(self, target: Target) -> http.client.HTTPResponse:
        # http.client on a socket of ours: it never resolves nor connects, and it reads no proxy from the
        # environment; no cookie is ever sent
        connection = http.client.HTTPConnection(target.host, target.port)
        self._open.append(connection)
        connection.sock = self.sock
        host = f"[{target.host}]" if ":" in target.host else target.host
        if target.port != DEFAULT_PORTS[target.scheme]:
            host += f":{target.port}"
        self.clock.arm(self.sock)
        connection.putrequest("GET", target.path_and_query, skip_host=True, skip_accept_encoding=True)
        for name, value in (
            ("Host", host),
            ("Accept", "image/*"),
            ("Accept-Encoding", "identity"),
            ("User-Agent", USER_AGENT),
            ("Connection", "close"),
        ):
            connection.putheader(name, value)
        connection.endheaders()
        self.clock.arm(self.sock)
        response = connection.getresponse()
        self._open.append(response)  # with Connection: close, the connection hands its socket over to it
        return response

    def read(self, got: int, announced: int | None) -> bytes:
        """The body's next chunk (b"" at its end), within the stall bound and the deadline."""
        try:
            self.clock.arm(self.sock)
            return self.response.read1(CHUNK)
        except http.client.IncompleteRead:
            if self._watchdog and self._watchdog.fired:
                raise self.clock.expired() from None
            of = f" sur {announced}" if announced is not None else ""
            raise FetchFailed(f"transfert interrompu ({got} octets{of})", permanent=False) from None
        except (OSError, http.client.HTTPException) as exc:
            raise self.failure(exc) from None

    def ended(self) -> None:
        """After the body's end: an end that was the watchdog shutting the connection down is the deadline."""
        if self._watchdog and self._watchdog.fired:
            raise self.clock.expired()

    def failure(self, exc: BaseException) -> FetchFailed:
        """What a network error means for the copy: all may heal, so none is permanent."""
        if (self._watchdog and self._watchdog.fired) or self.clock.left() <= 0:
            return self.clock.expired()
        if isinstance(exc, TimeoutError):
            return self.clock.timed_out()
        if isinstance(exc, ssl.SSLCertVerificationError):
            return FetchFailed(f"certificat TLS refusé: {exc.verify_message}", permanent=False)
        if isinstance(exc, ssl.SSLError):
            return FetchFailed(f"échec TLS: {exc.reason or exc}", permanent=False)
        if isinstance(exc, ConnectionRefusedError):
            return FetchFailed("connexion refusée", permanent=False)
        if isinstance(exc, http.client.RemoteDisconnected):
            return FetchFailed("connexion fermée sans réponse", permanent=False)
        if isinstance(exc, ConnectionError):
            return FetchFailed("connexion interrompue par la source", permanent=False)
        if isinstance(exc, http.client.HTTPException):
            return FetchFailed(f"réponse HTTP invalide ({type(exc).__name__})", permanent=False)
        return FetchFailed(f"erreur réseau: {getattr(exc, 'strerror', None) or exc}", permanent=False)

    def close(self) -> None:
        if self._watchdog:
            self._watchdog.stop()
        for thing in reversed(self._open):
            thing.close()
        self._open.clear()


class Watchdog:
    """Shuts the connection down at the deadline, whatever it waits for: per-read timeouts alone let a source
    that sends a byte now and then (a dripped head, a slow handshake) run past the deadline."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._twin: socket.socket | None = sock.dup()  # shutdown() on a duplicate ends the connection itself
        self._lock = threading.Lock()
        self.fired = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._twin is None:
                return
            self.fired = True
            with contextlib.suppress(OSError):  # already closed by the source
                self._twin.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._twin is not None:
                self._twin.close()
                self._twin = None
