"""Which URLs an image may be fetched from (IMAGE_SOURCES): the listed origins only, or any public address.
The rule is checked on the addresses the host resolves to, which are then the only ones connected to."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..domain.parsers import origin_text
from . import addresses

if TYPE_CHECKING:
    from ..domain.settings import Settings

PUBLIC = "public"
DEFAULT_PORTS = {"http": 80, "https": 443}
# what resolves a host: (host, port) -> its addresses, in the order to try them
Resolve = Callable[[str, int], Sequence[str]]


class Refused(Exception):
    """A URL that may not be fetched, so no connection is made; the text names what was refused, never a secret."""


class Unresolved(Exception):
    """A host that does not resolve now: unlike a refusal, it may later."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (socket.getaddrinfo), each once, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


origin = origin_text  # one spelling of an origin, for the settings and for the URLs compared with them


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the check: the checked address to connect to (never resolved again) and what to ask."""

    scheme: str
    host: str  # lower-case, without brackets: the Host header and the TLS server name
    port: int
    path_and_query: str
    address: str  # the checked IP address to connect to
    family: int  # socket.AF_INET or socket.AF_INET6
    alternatives: tuple[str, ...] = ()  # the host's other addresses, checked too: tried in turn if `address` fails

    @property
    def origin(self) -> str:
        return origin(self.scheme, self.host, self.port)


class Sources:
    """The policy of IMAGE_SOURCES: `check(url)` gives the Target to connect to, or raises Refused."""

    def __init__(self, origins: Sequence[str], *, resolve: Resolve = resolve, own: Iterable[str] | None = None):
        self.public = tuple(origins) == (PUBLIC,)
        self.origins = () if self.public else tuple(origins)
        self._resolve = resolve
        # the machine's addresses are refused in the public mode: read once, when first needed
        self._own = None if own is None else frozenset(ip_address(a) for a in own)

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        return cls(settings.image_sources)

    def describe(self) -> str:
        """One line for the start-up log."""
        if self.public:
            return "images copiées depuis toute adresse publique (IMAGE_SOURCES=public), jamais un réseau privé"
        if not self.origins:
            return "aucune image copiée, aucune origine autorisée (IMAGE_SOURCES est vide)"
        return "images copiées depuis " + ", ".join(self.origins) + " (IMAGE_SOURCES)"

    def check(self, url: str) -> Target:
        """The Target of `url`, resolved once; Refused if the URL may not be fetched, Unresolved if its host
        does not resolve now."""
        if not self.public and not self.origins:
            raise Refused("aucune origine autorisée (IMAGE_SOURCES est vide)")
        scheme, host, port, path_and_query = _parse(url)
        here = origin(scheme, host, port)
        if not self.public and here not in self.origins:
            raise Refused(f"origine non autorisée (IMAGE_SOURCES): {here}")
        try:
            found = [ip_address(a) for a in self._resolve(host, port)]
        except (OSError, ValueError):
            raise Unresolved(f"nom introuvable: {host}") from None
        if not found:
            raise Unresolved(f"nom introuvable: {host}")
        if self.public:
            # every address, not only the first: a name answering public and private ones is refused
            if self._own is None:
                self._own = addresses.machine_addresses()
            for address in found:
                kind = addresses.kind(address, self._own)
                if kind is not None:
                    raise Refused(f"adresse {kind} refusée (IMAGE_SOURCES=public): {address} pour {here}")
        first, *others = found
        family = socket.AF_INET if first.version == 4 else socket.AF_INET6
        return Target(scheme, host, port, path_and_query, str(first), family, tuple(str(a) for a in others))


def _parse(url: str) -> tuple[str, str, int, str]:
    """The scheme, host, port and path of an http(s) URL without credentials, or Refused."""
    # what parsers disagree on (a backslash, a space, a control or non-ASCII character) is refused outright
    if not url.isascii() or any(c <= " " or c in "\x7f\\" for c in url):
        raise Refused("URL refusée: espace, caractère de contrôle, barre oblique inverse ou caractère non ASCII")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("URL invalide") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise Refused(f"schéma non autorisé (http ou https seulement): {scheme or 'aucun'}")
    host = parts.hostname
    if not host:
        raise Refused("URL sans hôte")
    if "@" in parts.netloc:
        raise Refused(f"identifiants dans l'URL refusés: {scheme}://{host}")  # what precedes @ is never shown
    if port == 0:
        raise Refused(f"port invalide: {scheme}://{host}:0")
    path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port or DEFAULT_PORTS[scheme], path_and_query
