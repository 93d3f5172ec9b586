"""Schema migrations with Alembic: the numbered files of image_webhook/migrations/versions/, applied once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the pending migrations up to `revision` (idempotent: nothing pending, nothing done)."""
    command.upgrade(alembic_config(url), revision)


def pending(url: str) -> list[str]:
    """The revisions not yet applied to the database, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    connect = {} if url.startswith("sqlite") else {"connect_timeout": 10}
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool, connect_args=connect)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return [rev.revision for rev in reversed(list(script.iterate_revisions("head", current)))]
