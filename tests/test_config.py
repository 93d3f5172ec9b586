"""Configuration: read once from defaults, environment (.env) and mapping; bad values stop start-up."""

import logging

import pytest

from image_webhook import create_app
from image_webhook.domain.settings import ConfigError, load_settings, read_environment
from image_webhook.server import master


def test_defaults():
    """Without configuration (but a secret) the service uses the documented defaults."""
    settings = load_settings(environ={"WEBHOOK_SECRET": "s" * 32})
    assert settings.app_env == "production"
    assert settings.idempotence_window == 300 and settings.cleanup_interval == 300
    assert settings.idempotence_max_entries == 100_000
    assert settings.max_content_length == 1024 * 1024 and settings.port == 3000


def test_production_without_secret_refuses_to_start():
    """Production (the default) without WEBHOOK_SECRET raises, naming the variable."""
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET"):
        create_app(environ={})


@pytest.mark.parametrize(
    "environ, winner",
    [
        ({"NODE_ENV": "development"}, "development"),
        ({"NODE_ENV": "development", "APP_ENV": "production", "WEBHOOK_SECRET": "x" * 32}, "production"),
        ({"APP_ENV": " Development "}, "development"),
    ],
)
def test_app_env_falls_back_to_node_env(environ, winner):
    """APP_ENV wins; without it the spec's NODE_ENV decides."""
    assert load_settings(environ=environ).app_env == winner


@pytest.mark.parametrize(
    "variable, value",
    [
        ("IDEMPOTENCE_WINDOW", "abc"),
        ("IDEMPOTENCE_WINDOW", "-1"),
        ("IDEMPOTENCE_WINDOW", "0"),
        ("IDEMPOTENCE_WINDOW", "nan"),
        ("CLEANUP_INTERVAL", "soon"),
        ("IDEMPOTENCE_MAX_ENTRIES", "1.5"),
        ("IDEMPOTENCE_MAX_ENTRIES", "0"),
        ("MAX_CONTENT_LENGTH", "-5"),
        ("MAX_CONTENT_LENGTH", "1MB"),
        ("PORT", "70000"),
        ("PORT", "http"),
        ("APP_ENV", "staging"),
    ],
)
def test_invalid_value_names_the_variable(variable, value):
    """An invalid value stops start-up with a message naming the variable."""
    with pytest.raises(ConfigError, match=variable):
        load_settings(environ={"APP_ENV": "development", variable: value})


def test_mapping_wins_over_environment():
    """The caller's mapping (tests) wins over the environment."""
    settings = load_settings({"IDEMPOTENCE_WINDOW": 7}, environ={"APP_ENV": "development", "IDEMPOTENCE_WINDOW": "9"})
    assert settings.idempotence_window == 7


def test_dotenv_is_read_and_the_real_environment_wins(tmp_path, monkeypatch):
    """Values of .env are used, but a variable set in the real environment wins."""
    env_file = tmp_path / ".env"
    env_file.write_text('APP_ENV="development"\nIDEMPOTENCE_WINDOW=42\nPORT=4000\n')
    monkeypatch.setenv("PORT", "5000")
    environ = read_environment(env_file)
    settings = load_settings(environ=environ)
    assert (settings.app_env, settings.idempotence_window, settings.port) == ("development", 42, 5000)


def test_short_secret_is_a_warning_that_does_not_reveal_it(caplog):
    """A secret shorter than 32 characters logs a warning at start-up (gunicorn's master: server/master.py),
    without the secret itself."""
    caplog.set_level(logging.WARNING, logger="image_webhook")
    master.announce(load_settings({"APP_ENV": "production", "WEBHOOK_SECRET": "short-secret-value"}, environ={}))
    assert any("WEBHOOK_SECRET" in r.getMessage() and "32" in r.getMessage() for r in caplog.records)
    assert "short-secret-value" not in caplog.text


@pytest.mark.parametrize(
    ("settings", "warned"),
    [
        ({"APP_ENV": "production", "WEBHOOK_SECRET": "x" * 40}, "IMAGE_SOURCES is empty: no image is copied"),
        (
            {"DATABASE_URL": "postgresql://u:p@127.0.0.1/db", "IMAGE_STORE": "file:///srv/images"},
            "IMAGE_STORE is a local directory while DATABASE_URL is PostgreSQL",
        ),
    ],
)
def test_image_copy_configurations_that_cannot_work_are_warned_with_the_ready_line(caplog, settings, warned):
    """Production without IMAGE_SOURCES, and PostgreSQL with a directory store, say so with ⚠️ at start-up; the
    copy's own ℹ️ line names its sources and store."""
    caplog.set_level(logging.INFO, logger="image_webhook")
    master.announce(load_settings({"APP_ENV": "development", **settings}, environ={}))
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("⚠️ [Image Webhook] " + warned) for line in lines), lines
    assert any(line.startswith("ℹ️ [Image Webhook] Copie des images: ") for line in lines)


def test_a_development_configuration_copies_from_the_specs_backend_without_a_warning(caplog):
    """The defaults in development: the spec's backend as the only source, no warning about the copies."""
    caplog.set_level(logging.INFO, logger="image_webhook")
    settings = load_settings({"APP_ENV": "development"}, environ={})
    assert settings.image_sources == ("http://localhost:9006",)
    master.announce(settings)
    assert not [r for r in caplog.records if "IMAGE_" in r.getMessage() and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("value", ["ftp://host", "http://host/path", "http://user:pw@host", "localhost:9006"])
def test_image_sources_must_be_origins(value):
    """IMAGE_SOURCES takes http(s) origins without path or credentials (or `public`); anything else names it."""
    with pytest.raises(ConfigError, match="IMAGE_SOURCES"):
        load_settings({"APP_ENV": "development", "IMAGE_SOURCES": value}, environ={})
