"""How each setting's text is read: a parser per kind of value, raising ConfigError naming the variable."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

Parser = Callable[[str, Any], Any]
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
# a host name as a Host header carries it, in ASCII (an IDN in its xn-- form); a leading dot: its subdomains too
HOST_NAME = re.compile(r"\.?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


class ConfigError(ValueError):
    """A configuration value that the service refuses to start with; the message names the variable."""


def choice(options: Sequence[str]) -> Parser:
    """A parser accepting one of `options`, whatever its case and surrounding spaces."""

    def parse(name: str, value: Any) -> str:
        text = str(value).strip()
        match = next((option for option in options if option.lower() == text.lower()), None)
        if match is None:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {text!r}")
        return match

    return parse


def number(minimum: float, *, integer: bool) -> Parser:
    def parse(name: str, value: Any) -> float:
        try:
            parsed = int(value) if integer else float(value)
        except (TypeError, ValueError):
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{name} must be {kind}, not {value!r}") from None
        if parsed < minimum or parsed != parsed:
            raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")
        return parsed

    return parse


def text(name: str, value: Any) -> str | None:
    return str(value).strip() or None


def flag(name: str, value: Any) -> bool:
    word = str(value).strip().lower()
    if word not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{name} must be on or off (1/0, true/false, yes/no), not {value!r}")
    return word in ("1", "true", "yes", "on")


def database_url(name: str, value: Any) -> str:
    url = str(value).strip()
    if url and not url.startswith(DATABASE_SCHEMES):
        raise ConfigError(f"{name} must start with sqlite:/// or postgresql://, or be empty (no database)")
    return url


def secrets(name: str, value: Any) -> tuple[str, ...]:
    """Several values separated by spaces or commas (rotation): any of them is accepted."""
    values = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return tuple(values)


def users(name: str, value: Any) -> dict[str, str]:
    """`user:hash` pairs separated by spaces or commas, each hash as werkzeug's generate_password_hash makes it."""
    if isinstance(value, dict):
        return value
    pairs = {}
    for pair in secrets(name, value):
        user, _, hashed = pair.partition(":")
        if not user or not hashed.startswith(("scrypt:", "pbkdf2:")):
            raise ConfigError(f"{name} takes user:hash pairs (werkzeug.security.generate_password_hash); one is not")
        pairs[user] = hashed
    return pairs


def signing_secrets(name: str, value: Any) -> tuple[str, ...]:
    values = secrets(name, value)
    for secret in values:
        key = secret.removeprefix("whsec_")
        try:
            decoded = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{name} must be base64 (whsec_...); one of its values is not") from None
        if len(decoded) < 24:
            raise ConfigError(f"{name} must decode to at least 24 bytes; one of its values has {len(decoded)}")
    return values


def origins(name: str, value: Any) -> tuple[str, ...]:
    """`public`, or origins `scheme://host[:port]` (http or https) separated by spaces or commas, normalised:
    lower-case, the default port written out (`http://localhost:9006`, `https://cdn.example:443`)."""
    values = secrets(name, value)
    if [v.lower() for v in values] == ["public"]:
        return ("public",)
    normalised = []
    for origin in values:
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:
            raise ConfigError(f"{name} takes origins scheme://host[:port] or public; {origin!r} is not one") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password:
            raise ConfigError(f"{name} takes http(s) origins scheme://host[:port] or public; {origin!r} is not one")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"{name} takes origins without a path; {origin!r} has one")
        scheme = parts.scheme.lower()
        normalised.append(origin_text(scheme, parts.hostname.lower(), port or (443 if scheme == "https" else 80)))
    return tuple(normalised)


def origin_text(scheme: str, host: str, port: int) -> str:
    """An origin as IMAGE_SOURCES holds it and a URL's is compared with it: `scheme://host:port`, IPv6 in brackets."""
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def networks(name: str, value: Any) -> str:
    """Addresses or networks separated by commas (an address is a /32 or /128), or `*`: checked, kept as written
    (gunicorn's forwarded_allow_ips reads the same text)."""
    text = str(value).strip()
    items = [item.strip() for item in text.split(",") if item.strip()]
    if "*" not in items:
        try:
            for item in items:
                ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{name} takes addresses or networks separated by commas, or *: {exc}") from None
    return text


def hosts(name: str, value: Any) -> tuple[str, ...]:
    """Host names separated by spaces or commas, without port (any port matches): `example.com`, `.example.com`
    (it and its subdomains), an IPv4 address, an IPv6 one in brackets (`[::1]`), or `*` (any host); lower-case."""
    found = []
    for item in secrets(name, str(value).lower()):
        if item == "*":
            return ("*",)
        bracketed = item.startswith("[") and item.endswith("]")
        try:
            valid = ipaddress.ip_address(item[1:-1]).version == 6 if bracketed else bool(HOST_NAME.fullmatch(item))
        except ValueError:
            valid = False
        if not valid:
            raise ConfigError(
                f"{name} takes host names without port (example.com, .example.com, 192.0.2.1, [2001:db8::1]) or *; "
                f"{item!r} is not one"
            )
        found.append(item.rstrip(".") if not bracketed else item)
    return tuple(found)


def store_url(name: str, value: Any) -> str:
    """`file:///absolute/path` or `s3://bucket[/prefix]`."""
    url = str(value).strip()
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc:
        return url
    if parts.scheme == "s3" and parts.netloc:
        return url
    raise ConfigError(f"{name} must be file:///absolute/path or s3://bucket/prefix, not {url!r}")
