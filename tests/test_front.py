"""The HTTPS front: deploy/tls-front's real nginx before the real gunicorn, with a certificate made here.

The client connects from 127.0.0.2 (the whole of 127/8 is loopback on Linux) so that the address recorded for
a delivery says who it came from: the client behind the front (127.0.0.2), or the front itself (127.0.0.1).
"""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.payloads import COMPLETED, SECRET, URL, payload
from tests.servers import ROOT, GunicornServer, free_port, require

TOKEN = "front-token-0123456789abcdefghijklmnop"
CLIENT = "127.0.0.2"  # the client's address, not the front's
FORGED = "203.0.113.9"  # documentation range: nobody's
LIMIT = 1024 * 1024  # the service's MAX_CONTENT_LENGTH, and the front's client_max_body_size
SERVICE = {
    "APP_ENV": "production",
    "WEBHOOK_SECRET": SECRET,
    "JOBS_API_TOKENS": TOKEN,
    "WEB_CONCURRENCY": "2",
}


def nginx_present():
    """Skip outside CI, fail in CI, when neither PATH nor /usr/sbin (out of a user's PATH) has nginx."""
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        require("nginx")
    require("openssl")


class Front:
    """deploy/tls-front on a free loopback port, before `upstream`, with FRONT_DIR in `directory`."""

    def __init__(self, directory, upstream, cert, key):
        self.directory = Path(directory)
        self.directory.mkdir(exist_ok=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            "FRONT_PORT": f"127.0.0.1:{self.port}",
            "UPSTREAM": upstream,
            "TLS_CERT": str(cert),
            "TLS_KEY": str(key),
            "FRONT_DIR": str(self.directory),
        }
        self.context = ssl.create_default_context(cafile=str(cert))  # the certificate is checked, name included
        self.process = None

    def start(self, timeout=10):
        self._log = open(self.directory / "stderr.log", "wb")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen([ROOT / "deploy" / "tls-front"], env=self.env, stderr=self._log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tls-front exited with {self.process.returncode}: {self.stderr()}")
            try:
                self.tls().close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not answer within {timeout}s: {self.stderr()}")

    def stderr(self):
        return (self.directory / "stderr.log").read_text(errors="replace")

    def tcp(self, source=CLIENT):
        return socket.create_connection(("127.0.0.1", self.port), timeout=20, source_address=(source, 0))

    def tls(self, source=CLIENT):
        return self.context.wrap_socket(self.tcp(source), server_hostname="127.0.0.1")

    def request(self, method, path, body=None, headers=(), source=CLIENT):
        """(status, headers, JSON body) of one HTTPS request from `source`."""
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=20, context=self.context, source_address=(source, 0)
        )
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.headers, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()  # nginx's fast shutdown
            self.process.wait(10)
        self._log.close()


def deliver(front, job_id, headers=(), source=CLIENT):
    """Post the spec's completed notification for `job_id` through the front."""
    body = json.dumps(payload(COMPLETED, job_id)).encode()
    headers = {"Content-Type": "application/json", "X-Webhook-Secret": SECRET, **dict(headers)}
    return front.request("POST", URL, body, headers, source)


def recorded_addresses(front, job_id):
    """The client address of each delivery recorded for `job_id`, read through the read API."""
    token = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = front.request("GET", f"/api/jobs/{job_id}/deliveries", headers=token)
    assert status == 200, body
    return [delivery["client_address"] for delivery in body["deliveries"]]


def answer(sock, request=b""):
    """Send `request` and read the answer to the end (or until the peer closes): its bytes, and the seconds."""
    started = time.monotonic()
    if request:
        sock.sendall(request)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic() - started


def json_answer(data):
    """(status, JSON body) of a raw HTTP answer."""
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Type: application/json; charset=utf-8" in head, head
    return int(head.split(b" ", 2)[1]), json.loads(body)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command."""
    nginx_present()
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subject = ("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            *subject,
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def stack(tmp_path_factory, certificate):
    """gunicorn in production mode on loopback, and the front before it."""
    directory = tmp_path_factory.mktemp("stack")
    with ExitStack() as stack:
        server = stack.enter_context(GunicornServer(directory, SERVICE))
        front = Front(directory / "front", f"127.0.0.1:{server.port}", *certificate).start()
        stack.callback(front.stop)
        yield server, front


def test_webhook_over_https(stack):
    """The spec's completed notification through the front answers 200 with the spec's body, over TLS 1.2+ with
    HSTS and no nginx version, and its delivery is recorded (and access-logged) with the client's address,
    not the front's."""
    server, front = stack
    job_id = f"front-{uuid.uuid4().hex}"
    status, headers, body = deliver(front, job_id)
    assert status == 200, body
    assert {k: v for k, v in body.items() if k != "processing_time_ms"} == {
        "success": True,
        "message": "1 image(s) générée(s) avec succès",
        "job_id": job_id,
        "images_count": 1,
    }
    assert headers["Strict-Transport-Security"] == "max-age=63072000"
    assert headers["Server"] == "nginx"
    with front.tls() as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
    assert recorded_addresses(front, job_id) == [CLIENT]
    assert any(CLIENT in line and URL in line for line in server.settled_output().splitlines())


def test_forged_forwarded_for_through_the_front_is_replaced(stack):
    """An X-Forwarded-For written by the client is replaced by the front: the address recorded is the client's."""
    _, front = stack
    job_id = f"front-{uuid.uuid4().hex}"
    assert deliver(front, job_id, {"X-Forwarded-For": FORGED})[0] == 200
    assert recorded_addresses(front, job_id) == [CLIENT]


def test_forwarded_for_straight_to_gunicorn_is_believed_from_the_front_address_only(stack):
    """Sent straight to gunicorn, X-Forwarded-For is believed from a FORWARDED_ALLOW_IPS peer (127.0.0.1) and
    ignored from any other (127.0.0.2): a client that bypasses the front cannot choose its recorded address."""
    server, front = stack
    for source, job_id in ((CLIENT, f"direct-{uuid.uuid4().hex}"), ("127.0.0.1", f"trusted-{uuid.uuid4().hex}")):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10, source_address=(source, 0))
        body = json.dumps(payload(COMPLETED, job_id))
        headers = {"Content-Type": "application/json", "X-Webhook-Secret": SECRET, "X-Forwarded-For": FORGED}
        connection.request("POST", URL, body, headers)
        assert connection.getresponse().status == 200
        connection.close()
        assert recorded_addresses(front, job_id) == [CLIENT if source == CLIENT else FORGED]


def test_body_over_the_limit_is_refused_by_the_front(stack):
    """A body of 1 MiB reaches the service; one byte more is refused by nginx with a JSON 413 before a byte of
    it is read, the service never seeing the request."""
    _, front = stack
    headers = {"Content-Type": "application/json", "X-Webhook-Secret": SECRET}
    status, answer_headers, _ = front.request("POST", URL, b" " * LIMIT, headers)
    assert answer_headers["X-Request-ID"], status  # the service's answer (a 400: blanks are no JSON)
    with front.tls() as sock:
        head = f"POST {URL} HTTP/1.1\r\nHost: front\r\nContent-Type: application/json\r\nContent-Length: {LIMIT + 1}"
        data, _ = answer(sock, f"{head}\r\nX-Webhook-Secret: {SECRET}\r\n\r\n".encode())
    assert b"X-Request-ID" not in data
    refused = {"error": "Request Entity Too Large", "message": "Corps de requête trop volumineux"}
    assert json_answer(data) == (413, refused)


@pytest.mark.parametrize(
    "wire, tls",
    [
        (b"GARBAGE\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: front\r\nNo colon\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\n\r\n", False),
    ],
    ids=["request-line", "header", "plain-http"],
)
def test_malformed_requests_get_json_400(stack, wire, tls):
    """A malformed request line or header, or plain HTTP on the TLS port, is nginx's 400, in JSON."""
    _, front = stack
    with front.tls() if tls else front.tcp() as sock:
        data, _ = answer(sock, wire)
    assert json_answer(data) == (400, {"error": "Bad Request", "message": "Requête HTTP mal formée"})


def test_unknown_and_internal_paths_get_json_404(stack):
    """/metrics stays inside the network and the front's own error pages are internal: both a JSON 404."""
    _, front = stack
    for path in ("/metrics", "/.front/400.json"):
        status, _, body = front.request("GET", path)
        assert (status, body["error"]) == (404, "Not Found")


def test_slow_head_and_slow_body_are_cut_off_without_an_answer(stack):
    """A head or a body stalled for 10 s is closed by nginx with no answer at all (nginx never sends its 408),
    while a delivery sent meanwhile is answered; gunicorn times neither out: it never sees them."""
    server, front = stack
    head = f"POST {URL} HTTP/1.1\r\nHost: front\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
    with ThreadPoolExecutor(2) as pool, front.tls() as half_head, front.tls() as half_body:
        cut = [pool.submit(answer, half_head, head.encode()), pool.submit(answer, half_body, f"{head}\r\n{{".encode())]
        time.sleep(0.5)
        assert deliver(front, f"front-{uuid.uuid4().hex}")[0] == 200
        for future in cut:
            data, seconds = future.result(timeout=15)
            assert (data, 9 < seconds < 12) == (b"", True)
    output = server.settled_output()
    assert "request head timeout" not in output and "Requête refusée: 408" not in output


def test_silent_connections_held_at_the_front(stack):
    """64 silent connections (32 without a TLS handshake, 32 handshaken and silent) cost nginx, not gunicorn:
    20 deliveries sent meanwhile are all answered 200."""
    _, front = stack
    with ExitStack() as held:
        for _ in range(32):
            held.enter_context(front.tcp())
            held.enter_context(front.tls())
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda n: deliver(front, f"front-{uuid.uuid4().hex}")[0], range(20)))
    assert statuses == [200] * 20


def test_gunicorn_stopped_gives_json_502(tmp_path, certificate):
    """With gunicorn stopped, the front answers a JSON 502 (the backend retries later), and again 200 once
    gunicorn is back on the same port."""
    server = GunicornServer(tmp_path, SERVICE).start()
    front = Front(tmp_path / "front", f"127.0.0.1:{server.port}", *certificate).start()
    try:
        assert deliver(front, f"front-{uuid.uuid4().hex}")[0] == 200
        server.stop(signal.SIGTERM)
        status, headers, body = deliver(front, f"front-{uuid.uuid4().hex}")
        assert (status, headers["Content-Type"]) == (502, "application/json; charset=utf-8")
        assert body == {"error": "Bad Gateway", "message": "Le service ne répond pas, réessayez plus tard"}
        server.start()
        assert deliver(front, f"front-{uuid.uuid4().hex}")[0] == 200
    finally:
        front.stop()
        server.stop()


@pytest.mark.parametrize("missing", ["FRONT_PORT", "UPSTREAM", "TLS_CERT", "TLS_KEY", "FRONT_DIR"])
def test_tls_front_names_a_missing_variable(tmp_path, certificate, missing):
    """tls-front without one of its variables exits 1 with one line naming it, and starts no nginx."""
    front = Front(tmp_path, "127.0.0.1:1", *certificate)
    env = {k: v for k, v in front.env.items() if k != missing}
    result = subprocess.run([ROOT / "deploy" / "tls-front"], env=env, capture_output=True, text=True, timeout=10)
    assert (result.returncode, result.stderr) == (1, f"tls-front: {missing} is not set (see docs/deploy.md)\n")
    assert not (tmp_path / "nginx.pid").exists()
