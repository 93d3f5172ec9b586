"""gunicorn gthread worker that reads request heads in its poller under a deadline and answers its errors in JSON."""

from __future__ import annotations

import errno
import heapq
import selectors
import signal
import socket
import time
from collections import deque
from concurrent.futures import Future
from functools import partial
from queue import SimpleQueue
from typing import Any

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from ..observability.context import take_rest
from .heads import HeadRules, receive
from .replies import HeadTimeout, answer_error

DEFAULT_HEADER_TIMEOUT = 10.0
LINGER, LINGER_MAX_BYTES = 2.0, 65536  # as gunicorn's close_graceful(), without blocking the poller
REST_MAX = 10.0  # seconds a connection told to come back later rests at most before it is read again


class HeadReadingWorker(ThreadWorker):
    """gthread, except that a thread only ever gets a connection whose request head is complete."""

    header_timeout = DEFAULT_HEADER_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ordered by conn.deadline: each entry gets now + the same delay (capped alike when stopping)
        self.heads: deque[TConn] = deque()  # reading a request head
        self.lingering: deque[TConn] = deque()  # answered and half-closed, until the client closes
        # answered 429 and kept alive, not read again before (its end, a tie-break, the connection, its future)
        self.resting: list[tuple[float, int, TConn, Future[Any]]] = []
        self.rules = HeadRules(self.cfg)
        self.quitting = False  # SIGQUIT or SIGINT came: exit at the loop's next turn, without a graceful wait

    def init_signals(self) -> None:
        super().init_signals()
        # A stop signal that came between the fork and here ran the master's handler, inherited, which only
        # queues it in this process's copy of the master's queue (gunicorn.conf.py's post_fork hands it
        # over): a worker booting while gunicorn stops would otherwise serve on until graceful_timeout.
        master_signals: SimpleQueue[Any] | None = getattr(self, "master_signals", None)
        while master_signals is not None and not master_signals.empty():
            if master_signals.get_nowait() in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                self.alive = False

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGQUIT (the master's fast stop) and SIGINT (Ctrl-C reaches every process of the terminal): stop now.

        gunicorn calls sys.exit() in this handler, which raises SystemExit wherever the main thread happens to
        be; in a garbage collector's callback (a worker's first collection, often while create_app() runs, meets
        the master's SQLAlchemy objects) Python prints "Exception ignored ... SystemExit: 0" and goes on. Here
        the handler only asks: a booting worker finishes its boot and run() returns at once (alive is False);
        a running one leaves at the next turn of its loop, from wait_for_and_dispatch_events."""
        self.alive = False
        self.quitting = True
        self.method_queue.defer(lambda: None)  # wakes the poller, as gthread's handle_exit does

    # Where heads start: a new connection, a kept-alive one readable again, bytes read ahead with a body.
    # TLS (and HTTP/2 prior knowledge) read the socket in conn.init() themselves: plain gthread for them.

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, addr, listener.getsockname())
        if self.cfg.is_ssl or negotiation.prior_knowledge_allowed(self.cfg, addr):
            return self.enqueue_req(conn)
        self.start_head(conn)

    def on_client_socket_readable(self, conn: TConn, client: socket.socket) -> None:
        if self.cfg.is_ssl:
            return super().on_client_socket_readable(conn, client)
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self.start_head(conn)
        self.read_head(conn)  # readable already

    def handle(self, conn: TConn) -> Any:
        take_rest()  # a rest left by an earlier request of this thread that ended elsewhere than here
        return super().handle(conn)

    def finish_request(self, conn: TConn, fs: Future[Any]) -> None:
        if self.cfg.is_ssl or fs.cancelled() or fs.exception() is not None or fs.result() not in (True, False):
            return super().finish_request(conn, fs)  # TLS, a crash, or a deferred TLS connection
        if fs.result() is True and self.alive and (until := getattr(conn, "rest_until", 0.0)) > time.monotonic():
            # its client was told to come back later: its next request waits unread in the socket meanwhile,
            # holding no thread (murder_pending hands the connection back)
            conn.rest_until = 0.0
            heapq.heappush(self.resting, (until, id(conn), conn, fs))
            return None
        if fs.result() is False:
            return self.linger(conn)  # gthread's close_graceful() would block this loop up to 2 s
        ahead = conn.parser.unreader.take_buffered()  # the next request, read along with a body
        if not ahead:
            return super().finish_request(conn, fs)  # keep-alive
        self.start_head(conn)
        self.add_to_head(conn, ahead)

    def start_head(self, conn: TConn) -> None:
        conn.sock.setblocking(False)
        conn.head = bytearray()
        delay = self.header_timeout if self.alive else min(self.header_timeout, STOP_KEEPALIVE_LINGER)
        conn.deadline = time.monotonic() + delay
        self.heads.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.read_head, conn))

    def read_head(self, conn: TConn, _sock: object = None) -> None:
        # conn.head is None: a stale event, handed over or closed earlier in the same select() batch
        if conn.head is None or (data := receive(conn.sock, 8192)) is None:
            return
        if data:
            self.add_to_head(conn, data)
        else:
            self.drop(conn, self.heads)  # the client left before sending a request

    def add_to_head(self, conn: TConn, data: bytes) -> None:
        scan = max(0, len(conn.head) - 3)  # the new bytes, and the three before them
        conn.head += data
        if self.rules.parser_can_answer(conn.head, scan):
            self.hand_over(conn)  # the parser answers from these bytes alone, without another recv
        elif len(conn.head) > self.rules.max_head:  # the parser would recv() once more before checking its bound
            self.drop(conn, self.heads, errors.LimitRequestHeaders("max buffer headers"))

    def hand_over(self, conn: TConn) -> None:
        self.poller.unregister(conn.sock)
        self.heads.remove(conn)
        data, conn.head = bytes(conn.head), None
        conn.init()  # the parser of a new connection (blocking socket); nothing for a kept-alive one
        conn.parser.unreader.unread(data)
        conn.data_ready = True  # handle() must not wait for data
        self.enqueue_req(conn)

    def drop(self, conn: TConn, queue: deque[TConn], exc: BaseException | None = None) -> None:
        """Take `conn` off the poller and `queue`, then answer `exc` and linger, or close if there is none."""
        self.poller.unregister(conn.sock)
        queue.remove(conn)
        conn.head = None
        if exc is None:
            self.nr_conns -= 1
            return util.close(conn.sock)
        self.handle_error(None, conn.sock, conn.client, exc)
        self.linger(conn)

    def linger(self, conn: TConn) -> None:
        """Half-close, read and discard until the client closes: closing with unread bytes sends a RST,
        which can destroy the answer before the client reads it (RFC 9112 section 9.6)."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.drain, conn))
        except (OSError, ValueError):  # gone already
            self.nr_conns -= 1
            return util.close(conn.sock)
        conn.deadline, conn.drained = time.monotonic() + LINGER, 0
        self.lingering.append(conn)

    def drain(self, conn: TConn, _sock: object = None) -> None:
        # a closed socket: a stale event
        if conn.sock.fileno() < 0 or (data := receive(conn.sock, 65536)) is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > LINGER_MAX_BYTES:
            self.drop(conn, self.lingering)

    def murder_pending(self) -> None:
        """Also expire heads (408) and lingering closes: run() calls this after every turn of its loops."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive:  # stopping: a head on its way still gets served, but no longer waited for
            for conn in self.heads:
                conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        while self.heads and self.heads[0].deadline <= now:
            self.drop(self.heads[0], self.heads, HeadTimeout())
        while self.lingering and self.lingering[0].deadline <= now:
            self.drop(self.lingering[0], self.lingering)
        while self.resting and (self.resting[0][0] <= now or not self.alive):
            _, _, conn, fs = heapq.heappop(self.resting)
            self.finish_request(conn, fs)  # kept alive as usual (a stopping worker answers it with close)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        for queue in (self.heads, self.lingering) if force else ():  # the worker is exiting
            while queue:
                self.drop(queue[0], queue)
        while force and self.resting:
            self.nr_conns -= 1
            util.close(heapq.heappop(self.resting)[2].sock)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        if self.quitting:  # gunicorn's own quit, at a point of this loop rather than inside the signal handler
            self.tpool.shutdown(wait=False)
            self.cfg.worker_int(self)
            raise SystemExit(0)
        # wake up at the next deadline rather than after run()'s fixed 1 s
        for queue in (self.heads, self.lingering):
            if queue:
                timeout = min(timeout, max(queue[0].deadline - time.monotonic(), 0.0))
        if self.resting:
            timeout = min(timeout, max(self.resting[0][0] - time.monotonic(), 0.0))
        super().wait_for_and_dispatch_events(timeout)

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        answer_error(self, req, client, addr, exc)

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        rest = take_rest()  # asked by the application for this connection (observability.context)
        try:
            kept = super()._keepalive_after(conn, keepalive)
        except errors.ParseException as exc:
            # a malformed rest of body, met while draining it: the application has answered already, and
            # a second response would be read by the client as the answer to its next request
            self.log.debug("Closing connection after a malformed body: %s", exc)
            return False
        conn.rest_until = time.monotonic() + min(rest, REST_MAX) if kept and rest > 0 else 0.0
        return kept


def with_header_timeout(header_timeout: float = DEFAULT_HEADER_TIMEOUT) -> type[ThreadWorker]:
    """The worker for gunicorn.conf.py: `worker_class = with_header_timeout(seconds)`.

    gunicorn.config.validate_class (and util.load_class) keep a class object as it is; a bare function
    would be called with no argument, hence the default."""
    if not header_timeout > 0:
        raise ValueError(f"header_timeout must be > 0, not {header_timeout!r}")
    return type("HeadReadingWorker", (HeadReadingWorker,), {"header_timeout": float(header_timeout)})
