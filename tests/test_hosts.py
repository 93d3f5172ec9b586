"""ALLOWED_HOSTS: a Host the service does not answer to is a 400 JSON before credentials and routes; probes pass."""

import json
import socket

import pytest

from image_webhook.domain.settings import ConfigError, load_settings, startup_warnings
from tests.payloads import SECRET
from tests.servers import GunicornServer

pytestmark = pytest.mark.sqlite_only
REFUSED = {"error": "Bad Request", "message": "Hôte non autorisé"}
TOKEN = "read-api-token-0123456789abcdefghijklmnopqrstuvwxyz"


def production(make_app, **config):
    return make_app(APP_ENV="production", WEBHOOK_SECRET=SECRET, JOBS_API_TOKENS=TOKEN, **config).test_client()


@pytest.mark.parametrize("host", ["localhost", "localhost:3000", "127.0.0.1:8080", "[::1]:3000", "LOCALHOST."])
def test_development_accepts_the_loopback_names_on_any_port(client, host):
    """In development the loopback names are accepted whatever the port, in any case."""
    assert client.get("/openapi.json", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("path", ["/openapi.json", "/api/jobs", "/jobs", "/no-such-route", "/metrics"])
@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.2", "[::2]:3000", "bad host"])
def test_a_foreign_host_is_a_400_in_json(client, path, host):
    """Any other Host is refused with the service's JSON error and its request id, whatever the route."""
    answer = client.get(path, headers={"Host": host})
    assert answer.status_code == 400 and answer.get_json() == REFUSED
    assert answer.headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_whatever_the_host(client, path):
    """The liveness and readiness probes answer a prober naming the service by its IP address."""
    assert client.get(path, headers={"Host": "10.0.0.5:3000"}).status_code == 200


def test_the_host_is_checked_before_the_credentials_and_the_webhook(make_app):
    """In production a foreign Host is refused before the read API's token, the page's login and the webhook's
    secret are looked at (400, never 401), and the webhook records nothing."""
    client = production(make_app, ALLOWED_HOSTS="jobs.example.com", DASHBOARD_USERS="")
    evil = {"Host": "evil.example"}
    assert client.get("/api/jobs", headers=evil).get_json() == REFUSED
    assert client.get("/jobs", headers=evil).get_json() == REFUSED
    posted = client.post("/api/webhooks/image-completion", json={}, headers={**evil, "X-Webhook-Secret": SECRET})
    assert posted.status_code == 400 and posted.get_json() == REFUSED
    allowed = client.get("/api/jobs", headers={"Host": "jobs.example.com", "Authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("jobs.example.com", 200),
        ("jobs.example.com:443", 200),
        ("example.com", 200),
        ("deep.sub.example.com", 200),
        ("api.example.org", 200),
        ("evilexample.com", 400),
        ("sub.api.example.org", 400),
        ("localhost", 400),
    ],
)
def test_production_accepts_the_configured_names(make_app, host, status):
    """In production with ALLOWED_HOSTS, a name or a `.domain` and its subdomains, any port; nothing else (not
    even localhost)."""
    client = production(make_app, ALLOWED_HOSTS=".example.com, api.example.org")
    assert client.get("/openapi.json", headers={"Host": host}).status_code == status


def test_production_without_names_accepts_any_host_with_a_warning(make_app):
    """In production without ALLOWED_HOSTS every Host is accepted, and the start-up warns; names silence it."""
    assert production(make_app).get("/openapi.json", headers={"Host": "anything.example"}).status_code == 200
    base = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET, "DATABASE_URL": ""}
    warned = startup_warnings(load_settings(base, environ={}))
    assert any(warning.startswith("ALLOWED_HOSTS is empty or *") for warning in warned)
    named = startup_warnings(load_settings({**base, "ALLOWED_HOSTS": "jobs.example.com"}, environ={}))
    assert not any("ALLOWED_HOSTS" in warning for warning in named)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("Jobs.Example.com", ("jobs.example.com",)),
        (".example.com api.example.org", (".example.com", "api.example.org")),
        ("192.0.2.1,[2001:db8::1]", ("192.0.2.1", "[2001:db8::1]")),
        ("jobs.example.com,*", ("*",)),
        ("xn--bcher-kva.example.", ("xn--bcher-kva.example",)),
    ],
)
def test_allowed_hosts_is_read_once_into_names(value, parsed):
    """ALLOWED_HOSTS: names, `.domains`, addresses (IPv6 in brackets) or `*`, lower-case, separated by commas or
    spaces."""
    settings = load_settings({"APP_ENV": "development", "ALLOWED_HOSTS": value}, environ={})
    assert settings.allowed_hosts == parsed


@pytest.mark.parametrize("value", ["jobs.example.com:443", "[::1", "::1", "bücher.example", "-bad.example", "a/b"])
def test_a_bad_allowed_hosts_stops_the_start(value):
    """A port, an unbracketed IPv6 address, a non-ASCII name or a stray character stop the start, naming it."""
    with pytest.raises(ConfigError, match="ALLOWED_HOSTS takes host names"):
        load_settings({"APP_ENV": "development", "ALLOWED_HOSTS": value}, environ={})


def raw_get(server, host):
    """GET /api/jobs through a raw socket with `host` as the Host header: (status, JSON body)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        request = f"GET /api/jobs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        connection.sendall(request.encode("ascii"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_gunicorn_refuses_a_foreign_host(tmp_path):
    """Through gunicorn in development: `Host: evil.example` is a 400 JSON, a loopback name with its port is
    served."""
    with GunicornServer(tmp_path, {"APP_ENV": "development"}) as server:
        assert raw_get(server, "evil.example") == (400, REFUSED)
        status, body = raw_get(server, f"127.0.0.1:{server.port}")
        assert status == 200 and "jobs" in body


def test_gunicorn_warns_at_start_when_production_accepts_any_host(tmp_path):
    """Through gunicorn in production without ALLOWED_HOSTS: one ⚠️ line at start-up, and any Host is served."""
    with GunicornServer(tmp_path, {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}) as server:
        output = server.wait_for("ALLOWED_HOSTS is empty or *")
        assert "⚠️ [Image Webhook] ALLOWED_HOSTS is empty or *" in output
        assert output.count("ALLOWED_HOSTS is empty or *") == 1
        assert raw_get(server, "anything.example")[0] == 401  # no token: the read API's answer, not the Host's
