"""The client's address behind the HTTPS front: X-Forwarded-For believed from FORWARDED_ALLOW_IPS peers only.

gunicorn uses `forwarded_allow_ips` for X-Forwarded-Proto (wsgi.url_scheme) but always leaves REMOTE_ADDR as
the socket's peer (gunicorn/http/wsgi.py), which behind the front is the front itself. This middleware puts the
address the front saw in REMOTE_ADDR, before Flask reads it (`request.remote_addr`, a delivery's
`client_address`, the access log): only when the peer is a trusted front, and only the value that front added.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
PEER = "image_webhook.peer_addr"  # the environ key keeping the socket's peer once REMOTE_ADDR is replaced


def trusted_networks(value: str) -> tuple[Network, ...] | None:
    """FORWARDED_ALLOW_IPS (checked by the settings) as networks; None for `*`, every peer trusted."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    return None if "*" in items else tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _address(text: str) -> str | None:
    """`text` as a normalised IP address, or None when it is none (a name, a port, garbage)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


class TrustedForwarded:
    """WSGI middleware: from a trusted peer, REMOTE_ADDR becomes the last X-Forwarded-For entry.

    The last one because a proxy appends the address it saw: what comes before it was written by the client
    and is never believed (the shipped front replaces the header anyway). From any other peer, the header is
    ignored: a client that reaches gunicorn directly cannot choose the address recorded for it.
    """

    def __init__(self, app: WsgiApp, allow: str) -> None:
        self.app = app
        self.networks = trusted_networks(allow)

    def trusts(self, peer: str) -> bool:
        if self.networks is None:
            return True
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:  # a unix socket's peer (gunicorn trusts it, as for X-Forwarded-Proto)
            return True
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        peer = environ.get("REMOTE_ADDR", "")
        if forwarded and self.trusts(peer) and (client := _address(forwarded.rsplit(",", 1)[-1])):
            environ[PEER] = peer
            environ["REMOTE_ADDR"] = client
        return self.app(environ, start_response)
