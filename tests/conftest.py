"""Fixtures: an app per test (isolated store, no environment leaking in), its client, real servers."""

import logging
import os
import shutil
import uuid

import pytest

from image_webhook import create_app
from image_webhook.observability import logs
from image_webhook.service import EXTENSION
from image_webhook.storage.database import migrate
from tests.payloads import SECRET, FakeClock
from tests.servers import PostgresServer, RedisServer, SeaweedServer, require

# where "exactly once" is decided: the stateless mode's memory or Redis store, or a database
STATELESS, DATABASES = ("memory", "redis"), ("sqlite", "postgresql")

# the tests read the service's records with caplog; its stderr lines would only clutter the output
logs.configure(stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (open for the whole session)


@pytest.fixture
def clock():
    return FakeClock()


def pytest_generate_tests(metafunc):
    """Every test built on `make_app` runs in the stateless mode (memory and Redis stores) and on both
    databases, unless marked: memory_only (it moves the memory store's clock, which neither Redis nor a
    database follows), stateless (the specification's window), or database."""
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker
        backends = (
            ("memory",)
            if marker("memory_only")
            else ("sqlite",)
            if marker("sqlite_only")
            else STATELESS
            if marker("stateless")
            else (DATABASES if marker("database") else STATELESS + DATABASES)
        )
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real redis-server for the session (skipped with a how-to without one, failed in CI)."""
    require("redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL for the session, with a migrated template database (skipped with a how-to
    without PostgreSQL, failed in CI)."""
    require("postgres")
    server = PostgresServer().start()
    migrate.upgrade(server.create_database("migrated"))
    yield server
    server.stop()
    server.remove()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(backend, request, tmp_path):
    """A new, migrated database of the test's backend; empty in the stateless mode."""
    if backend == "sqlite":
        path = tmp_path / "jobs.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    if backend == "postgresql":
        return request.getfixturevalue("postgres").create_database(f"test_{uuid.uuid4().hex}", template="migrated")
    return ""


@pytest.fixture
def store_config(backend, database_url, request):
    if backend != "redis":
        return {"IDEMPOTENCE_BACKEND": "memory", "DATABASE_URL": database_url}
    url = request.getfixturevalue("redis_url")
    return {
        "IDEMPOTENCE_BACKEND": "redis",
        "REDIS_URL": url,
        "IDEMPOTENCE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:",
        "DATABASE_URL": "",
    }


@pytest.fixture
def make_app(clock, store_config, tmp_path):
    """Build apps from settings and test seams, never from the developer's environment; stop their threads."""
    apps = []
    images = {"IMAGE_STORE": f"file://{tmp_path / 'images'}"}  # never the checkout's instance folder

    def make(job_handler=None, **config):
        seams = {"job_handler": job_handler} if job_handler else {}
        settings = {"APP_ENV": "development", **store_config, **images, **config}
        app = create_app(settings, environ={}, clock=clock, **seams)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions[EXTENSION].stop()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def prod_client(make_app):
    return make_app(APP_ENV="production", WEBHOOK_SECRET=SECRET).test_client()


@pytest.fixture
def logs(caplog):
    """The service's log messages, captured from DEBUG up."""
    caplog.set_level(logging.DEBUG, logger="image_webhook")
    return caplog


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """One real SeaweedFS S3 server for the session (skipped with a how-to without `weed`, failed in CI)."""
    SeaweedServer.require()
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_environment(monkeypatch, seaweed):
    """The AWS variables boto3 reads, naming the test server's key (and nothing of the developer's)."""
    for name, value in seaweed.environment.items():
        monkeypatch.setenv(name, value)
    return seaweed
