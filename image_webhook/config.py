"""Configuration: defaults, then the environment (and `.env`), then the caller's mapping, checked once."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dotenv import dotenv_values


class ConfigError(ValueError):
    """A configuration value that the service refuses to start with; the message names the variable."""


ENVIRONMENTS = ("development", "production")
AUTH_MODES = ("secret", "signature", "any")
BACKENDS = ("memory", "redis")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
# the spec's example secret is public: it cannot protect a production service
PUBLIC_EXAMPLE_SECRET = "sorami-webhook-secret-key-2025"
# Flask's instance folder of the package: the default SQLite database lives there (git-ignored)
INSTANCE = Path(__file__).resolve().parent.parent / "instance"
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE / 'jobs.sqlite3'}"
DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


def _choice(options):
    """A parser accepting one of `options`, whatever its case and surrounding spaces."""

    def parse(name, value):
        value = str(value).strip()
        match = next((option for option in options if option.lower() == value.lower()), None)
        if match is None:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {value!r}")
        return match

    return parse


def _number(minimum, *, integer):
    def parse(name, value):
        try:
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{name} must be {kind}, not {value!r}") from None
        if number < minimum or number != number:
            raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")
        return number

    return parse


def _text(name, value):
    return str(value).strip() or None


def _flag(name, value):
    text = str(value).strip().lower()
    if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{name} must be on or off (1/0, true/false, yes/no), not {value!r}")
    return text in ("1", "true", "yes", "on")


def _database_url(name, value):
    url = str(value).strip()
    if url and not url.startswith(DATABASE_SCHEMES):
        raise ConfigError(f"{name} must start with sqlite:/// or postgresql://, or be empty (no database)")
    return url


def _users(name, value):
    """`user:hash` pairs separated by spaces or commas, each hash as werkzeug's generate_password_hash makes it."""
    if isinstance(value, dict):
        return value
    users = {}
    for pair in _secrets(name, value):
        user, _, hashed = pair.partition(":")
        if not user or not hashed.startswith(("scrypt:", "pbkdf2:")):
            raise ConfigError(f"{name} takes user:hash pairs (werkzeug.security.generate_password_hash); one is not")
        users[user] = hashed
    return users


def _secrets(name, value):
    """Several values separated by spaces or commas (rotation): any of them is accepted."""
    values = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    return tuple(values)


def _signing_secrets(name, value):
    secrets = _secrets(name, value)
    for secret in secrets:
        key = secret.removeprefix("whsec_")
        try:
            decoded = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{name} must be base64 (whsec_...); one of its values is not") from None
        if len(decoded) < 24:
            raise ConfigError(f"{name} must decode to at least 24 bytes; one of its values has {len(decoded)}")
    return secrets


# name: (default, parser); every variable the service reads, documented in the README
SETTINGS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "APP_ENV": ("production", _choice(ENVIRONMENTS)),
    "WEBHOOK_SECRET": ((), _secrets),
    "WEBHOOK_SIGNING_SECRET": ((), _signing_secrets),
    "WEBHOOK_AUTH": (None, _choice(AUTH_MODES)),
    "JOBS_API_TOKENS": ((), _secrets),  # the read API's Bearer tokens (several: rotation)
    "DASHBOARD": (True, _flag),  # the /jobs page; off: 404
    "DASHBOARD_USERS": ({}, _users),  # its HTTP Basic users in production
    "IDEMPOTENCE_WINDOW": (300, _number(0.001, integer=False)),
    "CLEANUP_INTERVAL": (300, _number(0.001, integer=False)),
    "IDEMPOTENCE_MAX_ENTRIES": (100_000, _number(1, integer=True)),
    "MAX_CONTENT_LENGTH": (1024 * 1024, _number(1, integer=True)),
    "PORT": (3000, _number(1, integer=True)),
    "BODY_TIMEOUT": (10, _number(0.001, integer=False)),
    "HEADER_TIMEOUT": (10, _number(0.001, integer=False)),
    "LOG_LEVEL": ("INFO", _choice(LOG_LEVELS)),
    "LOG_FORMAT": ("text", _choice(LOG_FORMATS)),
    "IDEMPOTENCE_BACKEND": (None, _choice(BACKENDS)),
    "REDIS_URL": (None, _text),
    "IDEMPOTENCE_KEY_PREFIX": ("image-webhook:", _text),
    "REDIS_TIMEOUT": (2, _number(0.001, integer=False)),
    "WEB_CONCURRENCY": (None, _number(1, integer=True)),
    "DATABASE_URL": (DEFAULT_DATABASE_URL, _database_url),  # empty: no database (the stateless mode)
    "DB_MIGRATE_ON_START": (True, _flag),
    "DB_TIMEOUT": (5, _number(0.001, integer=False)),
    "DELIVERY_RETENTION_DAYS": (7, _number(0.001, integer=False)),
    "JOB_RETENTION_DAYS": (90, _number(0.001, integer=False)),
}


def read_environment(env_file=None):
    """Return the process environment over the values of `.env` (the real environment wins)."""
    env_file = Path.cwd() / ".env" if env_file is None else env_file
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **os.environ}


def load_settings(config=None, environ=None):
    """Merge defaults, environment and `config`; raise ConfigError naming the first bad variable."""
    environ = read_environment() if environ is None else environ
    unknown = sorted(set(config or {}) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}: the settings are {', '.join(SETTINGS)}")
    raw = {name: environ[name] for name in SETTINGS if environ.get(name, "").strip()}
    if "APP_ENV" not in raw and environ.get("NODE_ENV", "").strip():
        raw["APP_ENV"] = environ["NODE_ENV"]  # keeps the spec's existing .env working
    if "DATABASE_URL" in environ and not str(environ["DATABASE_URL"]).strip():
        raw["DATABASE_URL"] = ""  # set and empty: the stateless mode, not the default database
    raw.update(config or {})
    settings: dict[str, Any] = {}
    for name, (default, parse) in SETTINGS.items():
        value = raw.get(name)
        value = default if value is None else value
        settings[name] = None if value is None else parse(name, value)
    if settings["WEBHOOK_AUTH"] is None:  # signatures, once a signing secret is configured
        settings["WEBHOOK_AUTH"] = "signature" if settings["WEBHOOK_SIGNING_SECRET"] else "secret"
    if settings["APP_ENV"] == "production":
        _check_production_auth(settings)
    _check_store(settings)
    if settings["PORT"] > 65535:
        raise ConfigError(f"PORT must be at most 65535, not {settings['PORT']}")
    return settings


def _check_store(settings):
    """Pick the store (REDIS_URL selects Redis) and the number of workers it allows: several with a
    database or Redis (each decides once for every worker), one with the memory store alone."""
    if settings["IDEMPOTENCE_BACKEND"] is None:
        settings["IDEMPOTENCE_BACKEND"] = "redis" if settings["REDIS_URL"] else "memory"
    if settings["IDEMPOTENCE_BACKEND"] == "redis":
        settings["REDIS_URL"] = settings["REDIS_URL"] or "redis://127.0.0.1:6379/0"
    shared = settings["IDEMPOTENCE_BACKEND"] == "redis" or bool(settings["DATABASE_URL"])
    if settings["WEB_CONCURRENCY"] is None:
        settings["WEB_CONCURRENCY"] = 2 * (os.cpu_count() or 1) + 1 if shared else 1
    elif settings["WEB_CONCURRENCY"] > 1 and not shared:
        raise ConfigError(
            f"WEB_CONCURRENCY={settings['WEB_CONCURRENCY']} needs a DATABASE_URL or IDEMPOTENCE_BACKEND=redis: "
            "each worker would have its own memory store and process the same job again"
        )


def _check_production_auth(settings):
    """Refuse a production configuration that would accept unauthenticated requests."""
    mode, secrets, signing = settings["WEBHOOK_AUTH"], settings["WEBHOOK_SECRET"], settings["WEBHOOK_SIGNING_SECRET"]
    if mode == "secret" and not secrets:
        raise ConfigError("WEBHOOK_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=secret)")
    if mode == "signature" and not signing:
        raise ConfigError("WEBHOOK_SIGNING_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=signature)")
    if mode == "any" and not (secrets or signing):
        raise ConfigError("WEBHOOK_SECRET or WEBHOOK_SIGNING_SECRET is required when APP_ENV is production")
    if PUBLIC_EXAMPLE_SECRET in secrets:
        raise ConfigError("WEBHOOK_SECRET is the spec's public example secret: generate one (openssl rand -base64 32)")


def startup_warnings(settings):
    """The warnings to log at start-up about the configuration, without revealing any secret."""
    warnings = [
        f"WEBHOOK_SECRET has a value shorter than 32 characters ({len(secret)})"
        for secret in settings["WEBHOOK_SECRET"]
        if len(secret) < 32
    ]
    if settings["APP_ENV"] == "production" and not settings["JOBS_API_TOKENS"] and settings["DATABASE_URL"]:
        warnings.append("JOBS_API_TOKENS is empty: the read API (/api/jobs) answers 401 to every call")
    if settings["APP_ENV"] == "production" and settings["DASHBOARD"] and not settings["DASHBOARD_USERS"]:
        warnings.append("DASHBOARD_USERS is empty: the /jobs page answers 401 (DASHBOARD=off turns it off)")
    return warnings
