"""Faults and concurrency through the real gunicorn: hostile clients, races with the cleanup, volume."""

import itertools
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.payloads import COMPLETED, payload
from tests.servers import GunicornServer

PATH = "/api/webhooks/image-completion"


@pytest.fixture
def server(tmp_path):
    # one worker: "the worker survived" is then "gunicorn booted one worker, once"
    with GunicornServer(tmp_path, {"APP_ENV": "development", "BODY_TIMEOUT": "2", "WEB_CONCURRENCY": "1"}) as server:
        yield server


def open_request(server, body, content_length=None):
    """Send the headers of a POST and return the socket, ready for the body."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    length = len(body) if content_length is None else content_length
    sock.sendall(
        (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
    )
    return sock


def read_status(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_slow_client_does_not_stall_the_others_and_gets_408(server):
    """A client sending one byte a second holds no one up, and is cut off with a 408 at BODY_TIMEOUT."""
    body = json.dumps(payload(COMPLETED, "slow-client")).encode()
    sock = open_request(server, body)
    stop = threading.Event()

    def dribble():
        for byte in body:
            if stop.wait(0.5):
                return
            try:
                sock.send(bytes([byte]))
            except OSError:
                return

    dribbler = threading.Thread(target=dribble)
    dribbler.start()
    try:
        for i in range(5):
            assert server.post(payload(COMPLETED, f"meanwhile-{i}"), timeout=5).status_code == 200
        assert read_status(sock) == 408
    finally:
        stop.set()
        dribbler.join()
        sock.close()
    assert server.post(payload(COMPLETED, "slow-client")).status_code == 200  # it was never marked


def test_lying_content_length_is_a_408_and_others_are_served(server):
    """A body shorter than its Content-Length gets a 408 after BODY_TIMEOUT; others are served meanwhile."""
    sock = open_request(server, b"", content_length=1000)
    sock.sendall(b'{"job_id": "liar", ')
    try:
        assert server.post(payload(COMPLETED, "while-lying"), timeout=5).status_code == 200
        assert read_status(sock) == 408
    finally:
        sock.close()


def test_disconnect_mid_body_leaves_the_worker_serving(server):
    """A client that disconnects halfway through its body leaves the worker serving, and its job unmarked."""
    body = json.dumps(payload(COMPLETED, "gone-midway")).encode()
    for _ in range(10):
        sock = open_request(server, body)
        sock.sendall(body[: len(body) // 2])
        sock.close()
    assert server.post(payload(COMPLETED, "gone-midway")).json()["images_count"] == 1
    assert server.settled_output().count("Booting worker") == 1


def test_distinct_jobs_from_many_threads_are_each_processed_once(server):
    """2,000 distinct jobs posted from 32 threads are all processed, none reported as a duplicate."""
    local = threading.local()

    def post(i):
        session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
        return session.post(server.url + PATH, json=payload(COMPLETED, f"bulk-{i}"), timeout=30).json()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, range(2000)))
    assert sum(a.get("images_count") == 1 for a in answers) == 2000
    assert server.settled_output().count("✅ [Image Webhook] Génération réussie") == 2000


def test_duplicates_racing_the_cleanup_are_processed_once_per_window(tmp_path):
    """Duplicates posted while the cleanup keeps expiring entries: processed at most once per window."""
    window = 0.5
    # the stateless mode: the specification's window (a database remembers a job for good)
    env = {"APP_ENV": "development", "IDEMPOTENCE_WINDOW": str(window), "CLEANUP_INTERVAL": "0.01", "DATABASE_URL": ""}
    processed = []
    lock = threading.Lock()
    with GunicornServer(tmp_path, env) as server:
        end = time.monotonic() + 3

        def hammer(_):
            session = requests.Session()
            while time.monotonic() < end:
                sent = time.monotonic()
                answer = session.post(server.url + PATH, json=payload(COMPLETED, "racing"), timeout=10).json()
                if answer.get("images_count") == 1:
                    with lock:
                        processed.append((sent, time.monotonic()))

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(hammer, range(16)))
    processed.sort()
    assert 2 <= len(processed) <= 3 / window + 1
    # between two processings, a whole window passed: the later request was sent after the earlier answer's
    # request by at least the window, minus what the round trips may blur
    for (sent_a, _), (_, answered_b) in itertools.pairwise(processed):
        assert answered_b - sent_a >= window


def test_options_through_gunicorn_is_204_with_allow(server):
    """Over raw HTTP, OPTIONS on the webhook is a 204 with Allow and neither a body nor text/html."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"OPTIONS {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    assert lines[0].startswith("http/1.1 204") and body == b""
    assert "allow: options, post" in lines or "allow: post, options" in lines
    assert not any(line.startswith("content-type:") for line in lines)
