"""Alembic's environment: migrations run online, on the URL `image_webhook.db.migrate` passes in."""

from alembic import context
from sqlalchemy import create_engine, pool

url = context.config.get_main_option("sqlalchemy.url")
assert url, "image_webhook.db.migrate sets sqlalchemy.url"
# nothing pooled: the master forks after migrating; a database that does not answer fails in 10 s
engine = create_engine(
    url, poolclass=pool.NullPool, connect_args={} if url.startswith("sqlite") else {"connect_timeout": 10}
)
with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
