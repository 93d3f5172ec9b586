"""Fixtures: an app per test (isolated store, no environment leaking in), its client, real servers."""

import logging
import os
import uuid

import pytest

from image_webhook import create_app, logs
from image_webhook.context import EXTENSION
from tests.payloads import SECRET, FakeClock
from tests.servers import RedisServer, require

# the tests read the service's records with caplog; its stderr lines would only clutter the output
logs.configure(stream=open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 (open for the whole session)


@pytest.fixture
def clock():
    return FakeClock()


def pytest_generate_tests(metafunc):
    """Every test built on `make_app` runs against both stores, unless marked memory_only (it moves
    the memory store's clock, which Redis does not follow)."""
    if "backend" in metafunc.fixturenames:
        memory_only = metafunc.definition.get_closest_marker("memory_only")
        metafunc.parametrize("backend", ["memory"] if memory_only else ["memory", "redis"], scope="function")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """One real redis-server for the session (skipped with a how-to without one, failed in CI)."""
    require("redis-server")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def store_config(backend, request):
    if backend == "memory":
        return {"IDEMPOTENCE_BACKEND": "memory"}
    url = request.getfixturevalue("redis_url")
    return {"IDEMPOTENCE_BACKEND": "redis", "REDIS_URL": url, "IDEMPOTENCE_KEY_PREFIX": f"test-{uuid.uuid4().hex}:"}


@pytest.fixture
def make_app(clock, store_config):
    """Build apps from settings and test seams, never from the developer's environment; stop their threads."""
    apps = []

    def make(job_handler=None, **config):
        seams = {"job_handler": job_handler} if job_handler else {}
        app = create_app({"APP_ENV": "development", **store_config, **config}, environ={}, clock=clock, **seams)
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
