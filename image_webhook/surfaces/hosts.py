"""The Host header a request may carry: ALLOWED_HOSTS (Django's model), checked before authentication and routing.

A name the service does not answer to is refused, so that nothing built from the Host (a cached answer, a link,
a redirect) can ever name a host an attacker chose. The probes are left alone: /healthz and /readyz answer the
same whatever the Host and build nothing from it, and a prober often names the service by its IP address.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from ..domain.values import Outcome

REFUSED = "Hôte non autorisé"
PROBES = frozenset({"/healthz", "/readyz"})


class ForeignHost(BadRequest):
    """400: the Host header names a host ALLOWED_HOSTS does not list."""

    outcome = Outcome.INVALID_PARAMETER


def host_name(host: str) -> str:
    """The name of a Host header's value, without its port: `[::1]` for an IPv6 address, lower-case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.partition(":")[0].rstrip(".")


def allowed(host: str, names: tuple[str, ...]) -> bool:
    """Whether `host` (a Host header's value) is one of `names`: `*` any, `.example.com` it and its subdomains."""
    if "*" in names:
        return True
    name = host_name(host)
    return bool(name) and any(name == n or (n.startswith(".") and (name == n[1:] or name.endswith(n))) for n in names)


def guard_hosts(app: Flask, names: tuple[str, ...]) -> None:
    """Refuse (400 JSON, the one error path) every request whose Host is not in `names`, probes excepted."""
    if "*" in names:
        return

    def check_host() -> None:
        if request.path not in PROBES and not allowed(request.host, names):
            raise ForeignHost(REFUSED)

    app.before_request(check_host)
