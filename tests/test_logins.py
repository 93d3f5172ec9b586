"""Failed page logins are throttled before they cost a hash: per client address, per process, bounded memory."""

import socket
import threading
import time
import uuid

import pytest
import requests

from image_webhook.intake.throttle import TOO_MANY, LoginThrottle, Throttled, client_key
from tests.payloads import COMPLETED, SECRET, payload
from tests.servers import GunicornServer, eventually
from tests.test_pages import PASSWORD, USER, USERS, basic

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def page(make_app):
    """A production app with a page login; `get(address, password)` asks for /jobs.json from `address`."""
    client = make_app(APP_ENV="production", WEBHOOK_SECRET=SECRET, DASHBOARD_USERS=USERS).test_client()

    def get(address, password):
        return client.get("/jobs.json", headers=basic(USER, password), environ_base={"REMOTE_ADDR": address})

    return get


def assert_throttled(response):
    assert response.status_code == 429, response.text
    assert response.get_json() == {"error": "Too Many Requests", "message": TOO_MANY}
    assert int(response.headers["Retry-After"]) >= 1


def test_an_address_gets_five_failures_then_429_until_its_bucket_refills(page, clock):
    """After 5 wrong passwords an address is answered 429 with Retry-After (even with the right password, which
    is not hashed); a second later it may try again, and the real user gets in."""
    for _ in range(5):
        assert page("203.0.113.7", "wrong").status_code == 401
    assert_throttled(page("203.0.113.7", "wrong"))
    assert_throttled(page("203.0.113.7", PASSWORD))
    assert page("198.51.100.1", "wrong").status_code == 401  # another address keeps its own budget
    clock.advance(1)
    assert page("203.0.113.7", PASSWORD).status_code == 200


def test_a_user_already_logged_in_is_not_throttled(page):
    """A login that passed before is recognised without a hash: a flood from its address does not lock it out."""
    assert page("203.0.113.8", PASSWORD).status_code == 200
    for _ in range(6):
        page("203.0.113.8", "wrong")
    assert_throttled(page("203.0.113.8", "wrong"))
    assert page("203.0.113.8", PASSWORD).status_code == 200


def test_the_process_caps_its_hashes_whatever_the_addresses(page, clock):
    """Wrong passwords from ever new addresses spend the process's budget (10, then 2 a second): then every new
    login is 429, until the budget refills."""
    answers = [page(f"192.0.2.{n}", "wrong").status_code for n in range(12)]
    assert answers == [401] * 10 + [429] * 2
    assert_throttled(page("192.0.2.200", PASSWORD))
    clock.advance(0.5)
    assert page("192.0.2.200", PASSWORD).status_code == 200


def test_an_ipv6_client_is_one_budget_per_64():
    """An IPv6 host owns its /64: rotating addresses inside it does not give it new budgets."""
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_key("not an address") == "not an address"


def test_the_remembered_addresses_are_bounded(clock):
    """However many addresses fail, at most max_addresses budgets are kept, the oldest forgotten first."""
    throttle = LoginThrottle(max_addresses=3, hashes=100, clock=clock)
    for n in range(10):
        address = f"192.0.2.{n}"
        throttle.admit(address)
        throttle.release(address, failed=True)
    assert throttle.tracked() == 3
    for _ in range(4):
        throttle.admit("192.0.2.9")
        throttle.release("192.0.2.9", failed=True)
    with pytest.raises(Throttled):
        throttle.admit("192.0.2.9")
    throttle.admit("192.0.2.0")  # forgotten: a new budget
    throttle.release("192.0.2.0", failed=False)


def test_one_hash_at_a_time_per_process(clock):
    """While one login is being hashed, another is answered 429 at once rather than hashed beside it."""
    throttle = LoginThrottle(concurrent=1, clock=clock)
    throttle.admit("192.0.2.1")
    with pytest.raises(Throttled) as refused:
        throttle.admit("192.0.2.2")
    assert refused.value.retry_after == 1
    throttle.release("192.0.2.1", failed=False)
    throttle.admit("192.0.2.2")
    throttle.release("192.0.2.2", failed=False)


def test_gunicorn_bad_logins_do_not_stop_the_webhook(tmp_path):
    """Through gunicorn: while 8 threads send wrong passwords, the webhook keeps answering 200 and the bad logins
    get 401 or 429 (never a 5xx); the real user gets in once the flood stops."""
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "DASHBOARD_USERS": USERS, "WEB_CONCURRENCY": "1"}
    with GunicornServer(tmp_path, env) as server:
        stop, statuses = threading.Event(), []

        def flood():
            with requests.Session() as session:
                while not stop.is_set():
                    answer = session.get(server.url + "/jobs.json", headers=basic(USER, "wrong"), timeout=10)
                    statuses.append(answer.status_code)

        threads = [threading.Thread(target=flood) for _ in range(8)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(10):
                body = payload(COMPLETED, f"flood-{uuid.uuid4().hex}")
                assert server.post(body, headers={"X-Webhook-Secret": SECRET}).status_code == 200
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert 429 in statuses and set(statuses) <= {401, 429}

        def logged_in():
            return requests.get(server.url + "/jobs.json", headers=basic(USER, PASSWORD), timeout=10).status_code == 200

        assert eventually(logged_in, True, timeout=5)  # the buckets refill within seconds


def exchange(sock, request):
    """Send `request` on the kept-alive `sock`, read one answer: (status, headers lower-cased, seconds taken)."""
    started = time.monotonic()
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, time.monotonic() - started


def login(password, forwarded=None):
    """A GET of /jobs.json with a Basic login, kept alive; through the front when `forwarded` names a client."""
    extra = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
    auth = basic(USER, password)["Authorization"]
    return f"GET /jobs.json HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n{extra}\r\n".encode()


def until_throttled(sock, request):
    """Wrong logins on `sock` until one is a 429: its Retry-After."""
    for _ in range(12):
        status, headers, _ = exchange(sock, request)
        if status == 429:
            return int(headers["retry-after"])
        assert status == 401
    raise AssertionError("no 429 after 12 wrong logins")


def test_gunicorn_reads_a_429d_connection_again_only_after_its_retry_after(tmp_path):
    """A client's own kept-alive connection answered 429 is not read again before its Retry-After (its next
    request waits unread, holding no thread: another connection is served at once), so a flood of wrong logins
    costs a request a connection a second. A connection from the front (X-Forwarded-For from a trusted peer)
    carries other clients' requests: it is never rested."""
    env = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "DASHBOARD_USERS": USERS, "WEB_CONCURRENCY": "1"}
    with GunicornServer(tmp_path, env) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            retry = until_throttled(sock, login("wrong"))
            sock.sendall(login("wrong"))  # sent at once, read by gunicorn only once the rest is over
            started = time.monotonic()
            assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
            assert time.monotonic() - started < 0.5 * retry  # another connection is not kept waiting
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            # answered after the rest: checked then (401, the bucket refilled meanwhile) or refused again (429)
            assert time.monotonic() - started >= retry - 0.25 and data.split(b" ", 2)[1] in (b"401", b"429")
        time.sleep(retry)  # the process's budget of hashes refills
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            until_throttled(sock, login("wrong", forwarded="203.0.113.9"))
            status, _, took = exchange(sock, login("wrong", forwarded="203.0.113.9"))
            assert status == 429 and took < 0.5
