"""Reading the request body: media type, size, and a deadline for slow clients."""
import socket
import threading
import time

from flask import request
from werkzeug.exceptions import ClientDisconnected, RequestTimeout, UnsupportedMediaType


def read_body(deadlines):
    """Return the raw body: 415 unless JSON in UTF-8, 413 past MAX_CONTENT_LENGTH, 408 if it is not
    all in within BODY_TIMEOUT.

    gunicorn sets no deadline on reading a body: a client that stops sending, lies about its
    Content-Length or sends a byte a second would otherwise hold a worker thread for good.
    """
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in ("utf-8", "utf8"):
        raise UnsupportedMediaType()
    sock = request.environ.get("gunicorn.socket")
    if sock is None:  # not under gunicorn (the test client): nothing to wait for
        return request.get_data(cache=False)
    sock.settimeout(deadlines.timeout)  # a silent client: each recv gives up; gunicorn resets it afterwards
    ticket = deadlines.watch(sock)
    try:
        body = request.get_data(cache=False)
    except ClientDisconnected:  # werkzeug's word for a timeout or a shut socket
        raise RequestTimeout() from None
    finally:
        deadlines.forget(ticket)
    if request.content_length is not None and len(body) < request.content_length:
        raise RequestTimeout()  # gunicorn hands over a body cut short without a word
    return body


class BodyDeadlines(threading.Thread):
    """Shuts the reading side of sockets whose body is late, so a dribbling client frees its thread."""

    def __init__(self, timeout):
        super().__init__(name="body-deadlines", daemon=True)
        self.timeout = timeout  # BODY_TIMEOUT
        self.tick = min(0.5, timeout / 4)  # how late past its deadline a body may still be read
        self._watched = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def watch(self, sock):
        """Watch `sock` until `forget(ticket)`; past `timeout` seconds its reads end."""
        ticket = object()
        with self._lock:
            self._watched[ticket] = (time.monotonic() + self.timeout, sock)
        return ticket

    def forget(self, ticket):
        with self._lock:
            self._watched.pop(ticket, None)

    def run(self):
        while not self._stopping.wait(self.tick):
            now = time.monotonic()
            with self._lock:
                late = [t for t, (deadline, _) in self._watched.items() if deadline <= now]
                sockets = [self._watched.pop(t)[1] for t in late]
            for sock in sockets:
                try:
                    sock.shutdown(socket.SHUT_RD)  # the blocked recv returns: the body ends there
                except OSError:
                    pass

    def stop(self, timeout=5):
        self._stopping.set()
        self.join(timeout)
