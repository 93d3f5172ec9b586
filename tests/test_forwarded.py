"""Which X-Forwarded-For the service believes (image_webhook/surfaces/forwarded.py), through Flask's test client."""

import pytest
from flask import Flask, request

from image_webhook import create_app
from image_webhook.domain.settings import ConfigError
from image_webhook.surfaces.forwarded import PEER, TrustedForwarded


def client_of(allow):
    """A test client of an app that answers the client address Flask sees, behind the middleware."""
    app = Flask(__name__)
    app.get("/")(lambda: {"remote_addr": request.remote_addr, "peer": request.environ.get(PEER)})
    app.wsgi_app = TrustedForwarded(app.wsgi_app, allow)  # type: ignore[method-assign]
    return app.test_client()


@pytest.mark.parametrize(
    "allow, peer, forwarded, seen",
    [
        ("127.0.0.1,::1", "127.0.0.1", "198.51.100.7", "198.51.100.7"),  # the front's own address
        ("127.0.0.1,::1", "::1", "2001:db8::7", "2001:db8::7"),
        ("127.0.0.1,::1", "127.0.0.2", "198.51.100.7", "127.0.0.2"),  # any other peer: ignored
        ("10.0.0.0/8", "10.1.2.3", "198.51.100.7", "198.51.100.7"),  # a network
        ("10.0.0.0/8", "127.0.0.1", "198.51.100.7", "127.0.0.1"),
        ("*", "192.0.2.1", "198.51.100.7", "198.51.100.7"),  # every peer
        ("127.0.0.1", "127.0.0.1", "203.0.113.9, 198.51.100.7", "198.51.100.7"),  # the entry the front added
        ("127.0.0.1", "127.0.0.1", "198.51.100.7, not-an-address", "127.0.0.1"),  # garbage: the peer stays
        ("127.0.0.1", "127.0.0.1", "198.51.100.7:1234", "127.0.0.1"),
        ("127.0.0.1", "127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_forwarded_for_believed_from_trusted_peers_only(allow, peer, forwarded, seen):
    """REMOTE_ADDR becomes the last X-Forwarded-For entry only from a FORWARDED_ALLOW_IPS peer, and only when it
    is an address; the socket's peer is kept beside it."""
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = client_of(allow).get("/", headers=headers, environ_base={"REMOTE_ADDR": peer}).get_json()
    assert body == {"remote_addr": seen, "peer": peer if seen != peer else None}


def test_a_bad_trust_list_stops_start_up_naming_it():
    """FORWARDED_ALLOW_IPS that is no list of addresses or networks stops create_app, naming the variable."""
    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        create_app({"APP_ENV": "development", "DATABASE_URL": "", "FORWARDED_ALLOW_IPS": "the front"}, environ={})
