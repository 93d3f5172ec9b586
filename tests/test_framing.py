"""Body framing and coding: chunked and Content-Length bodies under one size limit, gzip, malformed bodies."""

import contextlib
import gzip
import json
import socket
import time
import tracemalloc
import zlib

import pytest

from tests.payloads import COMPLETED, URL, payload
from tests.servers import GunicornServer
from tests.test_signatures import KEY_A, signed_headers

LIMIT = 1024 * 1024  # MAX_CONTENT_LENGTH by default
BODY_TIMEOUT = 2
DUPLICATE = {"success": True, "message": "Job déjà traité"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real gunicorn for the module, with the worker gunicorn.conf.py selects."""
    env = {"APP_ENV": "development", "BODY_TIMEOUT": str(BODY_TIMEOUT)}
    with GunicornServer(tmp_path_factory.mktemp("framing"), env) as server:
        yield server


def notification(job_id):
    return json.dumps(payload(COMPLETED, job_id)).encode()


def padded(job_id, size):
    """A completed notification followed by blanks up to `size` bytes: valid JSON whatever its length,
    and any prefix of it from the end of the object on would be valid JSON too."""
    body = notification(job_id)
    return body + b" " * (size - len(body))


def chunked(body, sizes=(100, 7, 1000)):
    """`body` in chunked framing, cut into pieces of the given sizes (the last one repeated)."""
    out, at, turn = b"", 0, 0
    while at < len(body):
        size = sizes[min(turn, len(sizes) - 1)]
        out += b"%x\r\n" % len(body[at : at + size]) + body[at : at + size] + b"\r\n"
        at, turn = at + size, turn + 1
    return out + b"0\r\n\r\n"


def exchange(server, body, headers=(), framing="chunked", close=True, timeout=10):
    """Send a raw POST (`body` already framed when chunked) and return every byte the server sends until it
    closes the connection or `timeout` passes."""
    lines = [f"POST {URL} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *headers]
    lines.append("Transfer-Encoding: chunked" if framing == "chunked" else f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return read_to_end(sock, deadline)


def read_to_end(sock, deadline):
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:  # closed with bytes of ours unread: what came before still counts
            break
        if not piece:
            break
        data += piece
    return data


def parse(data):
    """(status, lowercased headers, JSON body) of the first response in `data`."""
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in header_lines))
    body = rest[: int(headers["content-length"])]
    assert headers["content-type"].startswith("application/json"), data[:500]
    return int(status_line.split()[1]), headers, json.loads(body)


def responses(data):
    return sum(line.startswith(b"HTTP/1.1 ") for line in data.split(b"\r\n"))


# -- chunked framing through the real gunicorn


@pytest.mark.parametrize(
    "framed",
    [
        pytest.param(b"zz\r\n" + b"{}" * 100 + b"\r\n0\r\n\r\n", id="size-not-hex"),
        pytest.param(b"-5\r\n{} {}\r\n0\r\n\r\n", id="negative-size"),
        pytest.param(b"0x10\r\n" + b" " * 16 + b"\r\n0\r\n\r\n", id="0x-prefix"),
        pytest.param(b"5\r\n{}   XX0\r\n\r\n", id="no-crlf-after-data"),
        pytest.param(b"2\r\n{}\r\n0\r\nNo colon here\r\n\r\n", id="bad-trailer"),
        pytest.param(b"0" * 20000 + b"2\r\n{}\r\n0\r\n\r\n", id="size-line-too-long"),
    ],
)
def test_malformed_chunked_body_is_one_json_400(server, framed):
    """A malformed chunked body is one JSON 400 naming the framing, then the connection closes."""
    data = exchange(server, framed, close=False)
    status, _, body = parse(data)
    assert (status, body) == (400, {"error": "Bad Request", "message": "Corps de requête mal formé (chunked)"})
    assert responses(data) == 1, data


def test_valid_chunked_body_is_processed(server):
    """The spec's completed payload in several chunks, one with an extension, is processed."""
    framed = chunked(notification("chunked-ok")).replace(b"\r\n", b";note=1\r\n", 1)
    status, _, body = parse(exchange(server, framed))
    assert status == 200 and body["job_id"] == "chunked-ok" and body["images_count"] == 1


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_body_one_byte_over_the_limit_is_a_413(server, framing):
    """A body of MAX_CONTENT_LENGTH + 1 bytes is a JSON 413, chunked or not, and its job is not marked."""
    body = padded(f"over-{framing}", LIMIT + 1)
    sent = chunked(body, (65536,)) if framing == "chunked" else body
    status, _, answer = parse(exchange(server, sent, framing=framing))
    assert (status, answer["error"]) == (413, "Request Entity Too Large")
    status, _, answer = parse(exchange(server, chunked(notification(f"over-{framing}"))))
    assert status == 200 and answer["images_count"] == 1


def test_chunked_body_at_the_limit_is_read_whole(server):
    """A chunked body of exactly MAX_CONTENT_LENGTH bytes is read to its end and processed."""
    status, _, answer = parse(exchange(server, chunked(padded("at-limit", LIMIT), (65536,))))
    assert status == 200 and answer["job_id"] == "at-limit"


def test_chunked_body_over_the_limit_is_never_cut_to_fit(server):
    """A body whose first MAX_CONTENT_LENGTH bytes are valid JSON but which goes on is refused, not cut."""
    body = padded("cut-to-fit", LIMIT) + b" " * 10000
    status, _, _ = parse(exchange(server, chunked(body, (65536,))))
    assert status != 200


def test_content_length_over_the_limit_is_a_413_before_the_body(server):
    """A Content-Length over the limit is a 413 at once, without waiting for a body that never comes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {LIMIT + 1}\r\n\r\n".encode()
        )
        status, _, _ = parse(read_to_end(sock, time.monotonic() + BODY_TIMEOUT / 2))
    assert status == 413


@pytest.mark.parametrize(
    ("partial", "dribble"),
    [
        pytest.param(b"400\r\n{", b"", id="silent-mid-chunk"),
        pytest.param(b"2\r\n{}\r\n0\r\n", b"", id="silent-before-trailers"),
        pytest.param(b"400\r\n{", b" " * 200, id="dribbling-a-chunk"),
        pytest.param(b"2\r\n{}\r\n0\r\n", b"X-Slow: " + b"a" * 200, id="dribbling-a-trailer"),
    ],
)
def test_chunked_body_that_stops_coming_is_a_408(server, partial, dribble):
    """A chunked body that stalls, or dribbles a byte at a time, is one JSON 408 at BODY_TIMEOUT, never a 400."""
    deadline = time.monotonic() + BODY_TIMEOUT + 5
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
            + partial
        )
        data = b""
        for byte in dribble:  # one byte every 0.25 s, until the answer comes (the socket's timeout never fires)
            sock.settimeout(0.25)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                with contextlib.suppress(OSError):  # the server may have stopped reading: the answer is coming
                    sock.send(bytes([byte]))
                continue
            break
        data += read_to_end(sock, deadline)
    assert parse(data)[0] == 408 and responses(data) == 1, data


def test_transfer_coding_other_than_chunked_is_a_501(server):
    """A transfer coding gunicorn passes on undone (gzip, chunked) is a JSON 501, not a body read as is."""
    framed = chunked(gzip.compress(notification("te-gzip")))
    status, _, answer = parse(exchange(server, framed, headers=["Transfer-Encoding: gzip"]))
    assert (status, answer["error"]) == (501, "Not Implemented") and "chunked" in answer["message"]
    assert parse(exchange(server, chunked(notification("te-gzip"))))[0] == 200


# -- Content-Encoding through the real gunicorn


@pytest.mark.parametrize("framing", ["chunked", "length"])
def test_gzip_body_is_processed_through_gunicorn(server, framing):
    """A gzipped notification, chunked or with a Content-Length, is decoded and processed."""
    body = gzip.compress(notification(f"gzip-{framing}"))
    data = exchange(server, chunked(body) if framing == "chunked" else body, ["Content-Encoding: gzip"], framing)
    status, _, answer = parse(data)
    assert status == 200 and answer["images_count"] == 1


@pytest.mark.parametrize(
    ("encoding", "make", "expected"),
    [
        ("gzip", lambda body: body, 400),
        ("gzip", lambda body: gzip.compress(body + b" " * (10 * LIMIT)), 413),
        ("deflate", zlib.compress, 415),
        ("br", lambda body: body, 415),
    ],
    ids=["plain-labelled-gzip", "gzip-bomb", "deflate", "br"],
)
def test_refused_encodings_through_gunicorn(server, encoding, make, expected):
    """Each refused coding is a JSON error through gunicorn, and the job stays unmarked."""
    job = f"refused-{encoding}-{expected}"
    status, _, _ = parse(exchange(server, chunked(make(notification(job))), [f"Content-Encoding: {encoding}"]))
    assert status == expected
    assert parse(exchange(server, chunked(notification(job))))[2]["images_count"] == 1


# -- Content-Encoding through the Flask test client (both stores)


def post(client, body, encoding=None, **headers):
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return client.post(URL, data=body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZIP", "identity", ""])
def test_accepted_encodings_are_processed(client, encoding):
    """gzip (also x-gzip, in any case) is decoded; identity or an empty header is the body as is."""
    body = notification(f"accepted-{encoding}")
    response = post(client, gzip.compress(body) if "gzip" in encoding.lower() else body, encoding)
    assert response.status_code == 200 and response.get_json()["images_count"] == 1


@pytest.mark.parametrize("encoding", ["deflate", "br", "compress", "zstd", "gzip, gzip", "gzip, identity"])
def test_other_encodings_are_415_naming_those_accepted(client, encoding):
    """Any other coding, or several, is a JSON 415 whose message and Accept-Encoding name gzip."""
    job = "encoding-" + encoding.replace(", ", "-")
    response = post(client, gzip.compress(notification(job)), encoding)
    assert response.status_code == 415 and response.headers["Accept-Encoding"] == "gzip"
    assert response.get_json()["error"] == "Unsupported Media Type" and "gzip" in response.get_json()["message"]
    assert post(client, notification(job)).get_json()["images_count"] == 1  # not marked


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda body: body, id="not-gzip"),
        pytest.param(lambda body: gzip.compress(body)[:-6], id="truncated"),
        pytest.param(lambda body: gzip.compress(body) + b"garbage", id="trailing-bytes"),
        pytest.param(lambda body: b"", id="empty"),
    ],
)
def test_corrupt_gzip_is_a_json_400(client, corrupt):
    """A body labelled gzip that is not a whole gzip stream is a JSON 400, and the job stays unmarked."""
    body = notification("corrupt-gzip")
    response = post(client, corrupt(body), "gzip")
    assert response.status_code == 400
    assert response.get_json() == {"error": "Bad Request", "message": "Corps de requête mal formé (gzip)"}
    assert post(client, body).get_json()["images_count"] == 1


def test_gzip_bomb_is_a_413_at_bounded_memory(client):
    """100 MiB of blanks gzipped to ~100 KiB is a 413, and the service never holds much more than the limit."""
    bomb = gzip.compress(notification("bomb") + b" " * (100 * LIMIT), compresslevel=9)
    tracemalloc.start()
    try:
        response = post(client, bomb, "gzip")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413 and response.get_json()["error"] == "Request Entity Too Large"
    assert peak < 16 * LIMIT  # decoding it all would take 100 MiB
    assert post(client, notification("bomb")).get_json()["images_count"] == 1


def test_sent_size_over_the_limit_is_a_413_even_if_gzip(make_app):
    """The limit holds on the wire too: a gzip body larger than MAX_CONTENT_LENGTH is a 413."""
    client = make_app(MAX_CONTENT_LENGTH=2048).test_client()
    noise = bytes(range(256)) * 40  # hardly compressible
    response = post(client, gzip.compress(noise, compresslevel=0), "gzip")
    assert response.status_code == 413


def test_signature_is_verified_on_the_decoded_body(make_app):
    """A signed notification sent gzipped is verified on the JSON the sender signed, and processed."""
    client = make_app(APP_ENV="production", WEBHOOK_SIGNING_SECRET=KEY_A).test_client()
    body = notification("signed-gzip")
    headers = {**signed_headers(body, message_id="msg_gzip"), "Content-Encoding": "gzip"}
    response = client.post(URL, data=gzip.compress(body), headers=headers)
    assert response.status_code == 200 and response.get_json()["images_count"] == 1
