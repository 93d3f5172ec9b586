"""Configuration: defaults, then the environment (and `.env`), then the caller's mapping, read once into Settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from .parsers import (
    ConfigError,
    Parser,
    choice,
    database_url,
    flag,
    hosts,
    networks,
    number,
    origins,
    secrets,
    signing_secrets,
    store_url,
    text,
    users,
)

__all__ = ["SETTINGS", "ConfigError", "Settings", "load_settings", "read_environment", "startup_warnings"]

ENVIRONMENTS = ("development", "production")
AUTH_MODES = ("secret", "signature", "any")
BACKENDS = ("memory", "redis")
# the spec's example secret is public: it cannot protect a production service
PUBLIC_EXAMPLE_SECRET = "sorami-webhook-secret-key-2025"
# Flask's instance folder, beside the package: the default SQLite database lives there (git-ignored)
INSTANCE = Path(__file__).resolve().parents[2] / "instance"
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE / 'jobs.sqlite3'}"
DEFAULT_IMAGE_STORE = f"file://{INSTANCE / 'images'}"
# the specification's backend serves its images there: the development default of IMAGE_SOURCES
DEVELOPMENT_IMAGE_SOURCES = ("http://localhost:9006",)
# the Host headers development accepts: the loopback names, any port (production: ALLOWED_HOSTS, or any with a ⚠️)
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "[::1]")

# name: (default, parser); every variable the service reads, documented in the README and .env.example
SETTINGS: dict[str, tuple[Any, Parser]] = {
    "APP_ENV": ("production", choice(ENVIRONMENTS)),
    "WEBHOOK_SECRET": ((), secrets),
    "WEBHOOK_SIGNING_SECRET": ((), signing_secrets),
    "WEBHOOK_AUTH": (None, choice(AUTH_MODES)),
    "JOBS_API_TOKENS": ((), secrets),  # the read API's Bearer tokens (several: rotation)
    "DASHBOARD": (True, flag),  # the /jobs page; off: 404
    "DASHBOARD_USERS": ({}, users),  # its HTTP Basic users in production
    "IDEMPOTENCE_WINDOW": (300, number(0.001, integer=False)),
    "CLEANUP_INTERVAL": (300, number(0.001, integer=False)),
    "IDEMPOTENCE_MAX_ENTRIES": (100_000, number(1, integer=True)),
    "MAX_CONTENT_LENGTH": (1024 * 1024, number(1, integer=True)),
    "PORT": (3000, number(1, integer=True)),
    "BODY_TIMEOUT": (10, number(0.001, integer=False)),
    "HEADER_TIMEOUT": (10, number(0.001, integer=False)),
    "LOG_LEVEL": ("INFO", choice(("DEBUG", "INFO", "WARNING", "ERROR"))),
    "LOG_FORMAT": ("text", choice(("text", "json"))),
    "IDEMPOTENCE_BACKEND": (None, choice(BACKENDS)),
    "REDIS_URL": (None, text),
    "IDEMPOTENCE_KEY_PREFIX": ("image-webhook:", text),
    "REDIS_TIMEOUT": (2, number(0.001, integer=False)),
    "WEB_CONCURRENCY": (None, number(1, integer=True)),
    "DATABASE_URL": (DEFAULT_DATABASE_URL, database_url),  # empty: no database (the stateless mode)
    "DB_MIGRATE_ON_START": (True, flag),
    "DB_TIMEOUT": (5, number(0.001, integer=False)),
    "DELIVERY_RETENTION_DAYS": (7, number(0.001, integer=False)),
    "JOB_RETENTION_DAYS": (90, number(0.001, integer=False)),
    # a progress delivery's raw body is cleared after this, its row kept (docs/storage.md, the size budget)
    "PROGRESS_BODY_RETENTION_DAYS": (1, number(0.001, integer=False)),
    # the copy of the images (docs/images.md)
    "IMAGE_SOURCES": (None, origins),  # development: the spec's backend; production: none until set
    "IMAGE_STORE": (DEFAULT_IMAGE_STORE, store_url),
    "S3_ENDPOINT_URL": (None, text),
    "IMAGE_COPY_CONCURRENCY": (2, number(0, integer=True)),  # copiers per process; 0: none in the service
    "IMAGE_COPY_LEASE": (60, number(1, integer=False)),
    "IMAGE_COPY_ATTEMPTS": (8, number(1, integer=True)),
    "IMAGE_RETRY_BASE": (2, number(0.001, integer=False)),
    "IMAGE_MAX_BYTES": (50 * 1024 * 1024, number(1, integer=True)),
    "IMAGE_FETCH_TIMEOUT": (60, number(0.001, integer=False)),
    "IMAGE_URL_TTL": (900, number(1, integer=True)),
    # the server's address (development: loopback only; production: every interface, behind the front)
    "HOST": (None, text),
    "FORWARDED_ALLOW_IPS": ("127.0.0.1,::1", networks),  # whose X-Forwarded-For gunicorn believes: the front's
    "ALLOWED_HOSTS": (None, hosts),  # the names the Host header may carry (development: loopback; production: any)
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, checked, as attributes named after their variables (APP_ENV: `app_env`)."""

    app_env: str
    webhook_secret: tuple[str, ...]
    webhook_signing_secret: tuple[str, ...]
    webhook_auth: str
    jobs_api_tokens: tuple[str, ...]
    dashboard: bool
    dashboard_users: dict[str, str]
    idempotence_window: float
    cleanup_interval: float
    idempotence_max_entries: int
    max_content_length: int
    port: int
    body_timeout: float
    header_timeout: float
    log_level: str
    log_format: str
    idempotence_backend: str
    redis_url: str | None
    idempotence_key_prefix: str
    redis_timeout: float
    web_concurrency: int
    database_url: str  # empty: the stateless mode
    db_migrate_on_start: bool
    db_timeout: float
    delivery_retention_days: float
    job_retention_days: float
    progress_body_retention_days: float
    image_sources: tuple[str, ...]  # origins, ("public",), or () (no copy: each is refused)
    image_store: str
    s3_endpoint_url: str | None
    image_copy_concurrency: int
    image_copy_lease: float
    image_copy_attempts: int
    image_retry_base: float
    image_max_bytes: int
    image_fetch_timeout: float
    image_url_ttl: int
    host: str
    forwarded_allow_ips: str
    allowed_hosts: tuple[str, ...]  # ("*",): any

    @property
    def production(self) -> bool:
        return self.app_env == "production"

    @property
    def dialect(self) -> str:
        """The database's kind, as its Database names it: sqlite, postgresql, or '' (the stateless mode)."""
        url = self.database_url
        return "" if not url else "sqlite" if url.startswith("sqlite") else "postgresql"


def read_environment(env_file: Path | None = None) -> dict[str, str]:
    """Return the process environment over the values of `.env` (the real environment wins)."""
    env_file = Path.cwd() / ".env" if env_file is None else env_file
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**values, **os.environ}


def load_settings(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Merge defaults, environment and `config` (setting names); raise ConfigError naming the first bad variable."""
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
    values: dict[str, Any] = {}
    for name, (default, parse) in SETTINGS.items():
        value = raw.get(name)
        value = default if value is None else value
        values[name] = None if value is None else parse(name, value)
    if values["WEBHOOK_AUTH"] is None:  # signatures, once a signing secret is configured
        values["WEBHOOK_AUTH"] = "signature" if values["WEBHOOK_SIGNING_SECRET"] else "secret"
    if values["APP_ENV"] == "production":
        _check_production_auth(values)
    if values["IMAGE_SOURCES"] is None:
        values["IMAGE_SOURCES"] = () if values["APP_ENV"] == "production" else DEVELOPMENT_IMAGE_SOURCES
    if values["HOST"] is None:
        values["HOST"] = "0.0.0.0" if values["APP_ENV"] == "production" else "127.0.0.1"
    if values["ALLOWED_HOSTS"] is None:
        values["ALLOWED_HOSTS"] = ("*",) if values["APP_ENV"] == "production" else DEVELOPMENT_HOSTS
    _check_store(values)
    if values["PORT"] > 65535:
        raise ConfigError(f"PORT must be at most 65535, not {values['PORT']}")
    return Settings(**{name.lower(): value for name, value in values.items()})


def _check_store(values: dict[str, Any]) -> None:
    """Pick the store (REDIS_URL selects Redis) and the number of workers it allows: several with a
    database or Redis (each decides once for every worker), one with the memory store alone."""
    if values["IDEMPOTENCE_BACKEND"] is None:
        values["IDEMPOTENCE_BACKEND"] = "redis" if values["REDIS_URL"] else "memory"
    if values["IDEMPOTENCE_BACKEND"] == "redis":
        values["REDIS_URL"] = values["REDIS_URL"] or "redis://127.0.0.1:6379/0"
    shared = values["IDEMPOTENCE_BACKEND"] == "redis" or bool(values["DATABASE_URL"])
    if values["WEB_CONCURRENCY"] is None:
        values["WEB_CONCURRENCY"] = 2 * (os.cpu_count() or 1) + 1 if shared else 1
    elif values["WEB_CONCURRENCY"] > 1 and not shared:
        raise ConfigError(
            f"WEB_CONCURRENCY={values['WEB_CONCURRENCY']} needs a DATABASE_URL or IDEMPOTENCE_BACKEND=redis: "
            "each worker would have its own memory store and process the same job again"
        )


def _check_production_auth(values: dict[str, Any]) -> None:
    """Refuse a production configuration that would accept unauthenticated requests."""
    mode, given, signing = values["WEBHOOK_AUTH"], values["WEBHOOK_SECRET"], values["WEBHOOK_SIGNING_SECRET"]
    if mode == "secret" and not given:
        raise ConfigError("WEBHOOK_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=secret)")
    if mode == "signature" and not signing:
        raise ConfigError("WEBHOOK_SIGNING_SECRET is required when APP_ENV is production (WEBHOOK_AUTH=signature)")
    if mode == "any" and not (given or signing):
        raise ConfigError("WEBHOOK_SECRET or WEBHOOK_SIGNING_SECRET is required when APP_ENV is production")
    if PUBLIC_EXAMPLE_SECRET in given:
        raise ConfigError("WEBHOOK_SECRET is the spec's public example secret: generate one (openssl rand -base64 32)")


def startup_warnings(settings: Settings) -> list[str]:
    """The warnings to log at start-up about the configuration, without revealing any secret."""
    warnings = [
        f"WEBHOOK_SECRET has a value shorter than 32 characters ({len(secret)})"
        for secret in settings.webhook_secret
        if len(secret) < 32
    ]
    if settings.production and not settings.jobs_api_tokens and settings.database_url:
        warnings.append("JOBS_API_TOKENS is empty: the read API (/api/jobs) answers 401 to every call")
    if settings.production and settings.dashboard and not settings.dashboard_users:
        warnings.append("DASHBOARD_USERS is empty: the /jobs page answers 401 (DASHBOARD=off turns it off)")
    if settings.production and "*" in settings.allowed_hosts:
        warnings.append(
            "ALLOWED_HOSTS is empty or *: every Host header is accepted; set the names the service answers to "
            "(docs/security.md)"
        )
    if settings.database_url and not settings.image_sources:
        warnings.append("IMAGE_SOURCES is empty: no image is copied, every copy is refused (docs/images.md)")
    if settings.dialect == "postgresql" and settings.image_store.startswith("file:"):
        warnings.append(
            "IMAGE_STORE is a local directory while DATABASE_URL is PostgreSQL: several hosts need an S3 store "
            "(IMAGE_STORE=s3://bucket/prefix), or each serves only the images it copied"
        )
    return warnings
