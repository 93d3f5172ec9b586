"""Schema migrations with Alembic: the numbered files of image_webhook/migrations/versions/, applied once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, pool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# what gunicorn.conf.py (migrating on start) and `flask db` say when the schema is behind or cannot be migrated
NOT_MIGRATED = "Base de données non migrée ({} en attente): lancez make migrate"
CANNOT_MIGRATE = "Migration impossible ({}): vérifiez DATABASE_URL et que la base répond"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def sqlalchemy_url(url: str) -> str:
    """The service's URL as SQLAlchemy needs it: psycopg 3 is named, SQLite's folder exists."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return url
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def engine(url: str) -> Engine:
    """An engine on a SQLAlchemy URL for the migrations: nothing pooled (the master forks after migrating),
    and a database that does not answer fails in 10 s."""
    connect = {} if url.startswith("sqlite") else {"connect_timeout": 10}
    return create_engine(url, poolclass=pool.NullPool, connect_args=connect)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the pending migrations up to `revision` (idempotent: nothing pending, nothing done)."""
    command.upgrade(alembic_config(url), revision)


def pending(url: str) -> list[str]:
    """The revisions not yet applied to the database, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    connected = engine(sqlalchemy_url(url))
    try:
        with connected.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        connected.dispose()
    return [rev.revision for rev in reversed(list(script.iterate_revisions("head", current)))]
