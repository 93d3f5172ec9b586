"""Alembic's environment: migrations run online, on the URL `image_webhook.storage.database.migrate` passes in."""

from alembic import context

from image_webhook.storage.database.migrate import engine as migrations_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url, "image_webhook.storage.database.migrate sets sqlalchemy.url"
engine = migrations_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
