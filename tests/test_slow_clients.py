"""The real gunicorn with the head-reading worker: slow or silent clients hold no thread, its errors are JSON.

Self-contained (no conftest): a tiny Flask app and a gunicorn config are written to a temporary directory.
Raw sockets throughout, so that requests reach gunicorn exactly as written.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER_TIMEOUT = 1.5

APP = """
import os

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index():
    return {"pid": os.getpid()}


@app.post("/first-bytes")
def first_bytes():
    return {"start": request.stream.read(5).decode("latin-1")}
"""

CONFIG = """
from image_webhook.server.worker import with_header_timeout

worker_class = with_header_timeout({header_timeout})
workers = 1
threads = 4
bind = "127.0.0.1:{port}"
wsgi_app = "slow_clients_app:app"
keepalive = 5
graceful_timeout = 5
control_socket_disable = True
"""

TIMEOUT_BODY = {"error": "Request Timeout", "message": "En-têtes de requête incomplets ou trop lents à arriver"}


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log: Path
    pid: int  # of the worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_until_eof(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the server sends within `timeout`, and whether it closed the connection."""
    data, deadline = b"", time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def exchange(port: int, request: bytes, timeout: float = 5.0) -> tuple[bytes, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_until_eof(sock, timeout)


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def get(port: int) -> tuple[int, float, dict]:
    """GET / on a new connection: status, seconds until the whole answer, JSON body."""
    started = time.monotonic()
    data, eof = exchange(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    elapsed = time.monotonic() - started
    assert eof, f"no complete answer within {elapsed:.1f}s"
    status, _, body = parse(data)
    return status, elapsed, json.loads(body)


def assert_served_promptly(port: int, count: int) -> None:
    for _ in range(count):
        status, elapsed, _ = get(port)
        assert status == 200 and elapsed < 1.0, f"{status} after {elapsed:.3f}s"


def assert_json_error(data: bytes, status: int, error: str, message: str) -> None:
    assert data.count(b"HTTP/1.1 ") == 1, data
    got, headers, body = parse(data)
    assert got == status
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["connection"] == "close"
    assert json.loads(body) == {"error": error, "message": message}


def assert_timed_out(socks: list[socket.socket], opened: float) -> None:
    """Each socket got the JSON 408 then EOF, at the header deadline (`opened`: before connecting)."""
    for sock in socks:
        data, eof = read_until_eof(sock, HEADER_TIMEOUT + 3)
        assert eof
        assert_json_error(data, 408, **TIMEOUT_BODY)
    assert HEADER_TIMEOUT - 0.1 < time.monotonic() - opened < HEADER_TIMEOUT + 1.5


@contextmanager
def gunicorn(directory: Path):
    """gunicorn with the worker under test, one worker of 4 threads, on a free loopback port."""
    port = free_port()
    (directory / "slow_clients_app.py").write_text(APP, encoding="utf-8")
    config = directory / "gunicorn_slow_clients.conf.py"
    config.write_text(CONFIG.format(header_timeout=HEADER_TIMEOUT, port=port), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)])}
    log = directory / f"gunicorn-{port}.log"
    with ExitStack() as stack:
        output = stack.enter_context(open(log, "wb"))
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(config)],
            cwd=directory,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        stack.callback(stop, process)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "gunicorn did not answer within 20 s"
            try:
                status, _, body = get(port)
                if status == 200:
                    break
            except (OSError, AssertionError, IndexError, ValueError):  # not listening yet, or booting
                time.sleep(0.05)
        yield Server(port, process, log, body["pid"])


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with gunicorn(tmp_path_factory.mktemp("slow_clients")) as server:
        yield server


@contextmanager
def connections(port: int, count: int, first_bytes: bytes = b""):
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5)) for _ in range(count)]
        for sock in socks:
            sock.sendall(first_bytes)
        yield socks


def test_silent_connections_do_not_delay_normal_requests(server):
    """While 64 connections that send nothing are open, each of 100 requests is answered in under 1 s."""
    with connections(server.port, 64):
        time.sleep(0.1)  # all accepted
        assert_served_promptly(server.port, 100)


@pytest.mark.parametrize("count", [4, 8])
def test_unfinished_heads_get_408_and_hold_no_thread(server, count):
    """Connections that sent `POST /api/` only: others are served meanwhile, they get a JSON 408 and are closed."""
    opened = time.monotonic()
    with connections(server.port, count, b"POST /api/") as socks:
        time.sleep(0.1)
        assert_served_promptly(server.port, 10)
        assert_timed_out(socks, opened)


def test_dripping_heads_get_408_and_hold_no_thread(server):
    """6 clients sending their headers one byte every 0.3 s: others are served meanwhile, they get a JSON 408."""
    request = b"POST /api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    done = threading.Event()

    def drip(sock: socket.socket) -> None:
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except OSError:
                return
            if done.wait(0.3):
                return

    opened = time.monotonic()
    with connections(server.port, 6) as socks:
        drippers = [threading.Thread(target=drip, args=(sock,)) for sock in socks]
        for dripper in drippers:
            dripper.start()
        try:
            time.sleep(0.5)
            assert_served_promptly(server.port, 10)
            assert_timed_out(socks, opened)
        finally:
            done.set()
            for dripper in drippers:
                dripper.join(5)


def test_clients_that_never_close_do_not_stall_the_others(server):
    """Clients that keep their connection open after a `Connection: close` answer delay no one else."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with connections(server.port, 3, request) as socks:
        for sock in socks:
            data, eof = read_until_eof(sock, 5)  # read the answer and its EOF, but do not close
            assert eof and parse(data)[0] == 200
        assert_served_promptly(server.port, 10)


BAD_REQUEST = (400, "Bad Request", "Requête HTTP mal formée")
URI_TOO_LONG = (414, "URI Too Long", "Ligne de requête trop longue")
HEADERS_TOO_LARGE = (431, "Request Header Fields Too Large", "En-têtes de requête trop volumineux")


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (b"POST /api/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", BAD_REQUEST),
        (
            b"POST /api/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            BAD_REQUEST,
        ),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Secret-Echo: a\x01b\r\n\r\n", BAD_REQUEST),
        (b"GET / HTTP/1.1\nHost: a\n\n", BAD_REQUEST),  # bare LF: answered at once, not at the head deadline
        (b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: a\r\n\r\n", URI_TOO_LONG),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 8200 + b"\r\n\r\n", HEADERS_TOO_LARGE),
    ],
    ids=["two-content-lengths", "content-length-and-chunked", "control-byte", "bare-lf", "long-line", "long-header"],
)
def test_gunicorn_errors_are_json(server, request_bytes, expected):
    """gunicorn's own rejections are one JSON answer with gunicorn's status, echoing nothing the client sent."""
    started = time.monotonic()
    data, eof = exchange(server.port, request_bytes)
    assert eof and time.monotonic() - started < 1.0
    assert_json_error(data, *expected)
    assert b"X-Secret-Echo" not in data and b"CONTENT-LENGTH" not in data.upper().partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", ["/first-bytes", "/"], ids=["reads-the-start", "405-without-reading"])
def test_invalid_chunk_after_the_answer_gives_no_second_response(server, path):
    """A chunked body malformed past what the app read: whatever the app answers, the connection carries one answer."""
    body = b"7d0\r\n" + b"x" * 2000 + b"\r\nZZ\r\nxx\r\n0\r\n\r\n"
    request = f"POST {path} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body
    data, eof = exchange(server.port, request)
    assert eof
    assert data.count(b"HTTP/1.1 ") == 1, data


def test_stopping_closes_connections_still_sending_a_head(tmp_path):
    """On SIGTERM, a connection stuck in its head is answered 408 and closed, and gunicorn exits promptly."""
    with gunicorn(tmp_path) as server, connections(server.port, 1, b"POST /api/ HTTP/1.1\r\nHost: a\r\n") as socks:
        time.sleep(0.1)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        data, eof = read_until_eof(socks[0], 5)
        socks[0].close()  # as a client does at EOF; the worker waits for it (at most 2 s) to close the connection
        assert eof
        assert_json_error(data, 408, **TIMEOUT_BODY)
        assert server.process.wait(5) == 0
        assert time.monotonic() - started < 3.5


def test_the_worker_survived_everything(server):
    """After all of the above, the same worker, never restarted, serves normally, then stops at once on SIGTERM."""
    status, elapsed, body = get(server.port)
    assert (status, body["pid"]) == (200, server.pid) and elapsed < 1.0
    assert server.log.read_text(errors="replace").count("Booting worker") == 1
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0
    # no connection left counted (nr_conns): else the worker waits for graceful_timeout (5 s) to stop
    assert time.monotonic() - started < 2.0
