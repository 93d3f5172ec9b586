"""The operators' commands, `flask --app app db ...` and `flask --app app jobs ...`: Flask's CLI finds them as
plugins (pyproject.toml's flask.commands), listed even when the app cannot load; create_app() registers them on
app.cli too. Their help is French, like what they print."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, NoAppException, ScriptInfo, load_dotenv

from ..domain.settings import ConfigError
from ..domain.values import Status
from ..service import service
from ..service.assembly import file_release
from ..storage.database import Database, deliveries, jobs, retention
from ..storage.errors import DatabaseUnavailable

STATELESS = "pas de base de données: DATABASE_URL est vide"
UNREACHABLE = "la base de données ne répond pas{}: vérifiez DATABASE_URL"
LISTED = ("job_id", "status", "progress", "created_at", "deliveries", "duplicates")

db_commands = AppGroup("db", help="Le schéma de la base de données (DATABASE_URL): ses migrations Alembic.")
jobs_commands = AppGroup("jobs", help="Les jobs enregistrés et leurs livraisons.")


def register(app: Flask) -> None:
    app.cli.add_command(db_commands)
    app.cli.add_command(jobs_commands)


def one_line_errors(factory: Callable[..., Flask]) -> Callable[..., Flask]:
    """`factory` (create_app), for app.py: when a click command loads it (`flask --app app`), a configuration
    error is one line on stderr naming the variable, as gunicorn says it, and exit 2; never a traceback.
    Elsewhere (gunicorn, the tests) it is the factory itself."""

    @functools.wraps(factory)
    def create(*args: Any, **kwargs: Any) -> Flask:
        context = click.get_current_context(silent=True)
        info = context.find_object(ScriptInfo) if context is not None else None
        if info is not None and info.load_dotenv_defaults:
            # Flask's CLI loads .flaskenv and .env before running a command, but `flask --app app --help` lists
            # the commands (loading the app) before: load them here too (what is set already stays)
            load_dotenv()
        try:
            return factory(*args, **kwargs)
        except ConfigError as exc:
            if context is None:
                raise
            raise BadConfiguration(f"Configuration invalide: {exc}") from None

    return create


class BadConfiguration(NoAppException):
    """The app cannot load: its configuration is wrong. Flask's CLI shows a NoAppException as one line in
    `--help` (the plugin commands are still listed); a command shows it alone on stderr, and exits 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


class Failure(click.ClickException):
    """What went wrong, alone on stderr (without click's English "Error: "), and exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(self.format_message(), err=True)


def with_database(*, migrated: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the command as `command(db, ...)` on the service's database (its schema up to date when
    `migrated`), then stop the service: its threads end and the writer's queue is committed, so the
    process exits at once. Exit 1 with a message in the stateless mode or when the database is down."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            components = service()
            try:
                if components.db is None:  # the stateless mode keeps no record: said here only
                    raise Failure(STATELESS)
                if migrated:
                    _check_schema(components.settings.database_url)
                return command(components.db, *args, **kwargs)
            except DatabaseUnavailable:
                raise Failure(UNREACHABLE.format("")) from None
            finally:
                components.stop()

        return run

    return decorate


def _pending(url: str) -> list[str]:
    """The migrations not applied yet; a database that does not answer is a Failure naming the error."""
    from ..storage.database import migrate  # Alembic and SQLAlchemy: imported by the commands only, never in a worker

    try:
        return migrate.pending(url)
    except Exception as exc:  # the driver's or SQLAlchemy's error: named, without a traceback
        raise Failure(UNREACHABLE.format(f" ({type(exc).__name__})")) from None


def _check_schema(url: str) -> None:
    from ..storage.database import migrate

    if waiting := _pending(url):
        raise Failure(migrate.NOT_MIGRATED.format(", ".join(waiting)))


@db_commands.command("upgrade")
@with_database(migrated=False)
def upgrade(db: Database) -> None:
    """Applique les migrations en attente (sans effet si la base est à jour)."""
    from ..storage.database import migrate

    url = service().settings.database_url
    try:
        applied = migrate.pending(url)
        migrate.upgrade(url)
    except Exception as exc:  # as gunicorn.conf.py says it when it migrates on start
        raise Failure(migrate.CANNOT_MIGRATE.format(type(exc).__name__)) from None
    click.echo(f"Migration(s) appliquée(s): {', '.join(applied)}" if applied else "Base de données à jour")


@db_commands.command("pending")
@with_database(migrated=False)
def pending(db: Database) -> None:
    """Liste les migrations pas encore appliquées, la plus ancienne d'abord."""
    waiting = _pending(service().settings.database_url)
    click.echo("\n".join(waiting) if waiting else "Base de données à jour")


@jobs_commands.command("show")
@click.argument("job_id")
@click.option("--body", is_flag=True, help="Avec le corps brut de chaque livraison, tel que reçu.")
@with_database()
def show(db: Database, job_id: str, body: bool) -> None:
    """Un job et ses livraisons (la plus récente d'abord), en JSON. Code de sortie 1 si le job n'est pas
    enregistré; les livraisons à son nom (refusées) sont tout de même affichées."""
    job = jobs.find(db, job_id)
    received = deliveries.for_job(db, job_id, include_body=body)
    if job is not None or received:
        click.echo(json.dumps({"job": job, "deliveries": received}, ensure_ascii=False, indent=2))
    if job is None:
        raise Failure(f"Job inconnu: {job_id}" + (f" ({len(received)} livraison(s) à ce nom)" if received else ""))


@jobs_commands.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Combien de jobs.")
@click.option("--status", type=click.Choice([status.value for status in Status]), help="Les jobs à ce statut.")
@click.option("--json", "as_json", is_flag=True, help="Les jobs en tableau JSON, tous leurs champs.")
@with_database()
def list_jobs(db: Database, limit: int, status: str | None, as_json: bool) -> None:
    """Les jobs les plus récents d'abord, un par ligne."""
    found, _ = jobs.page(db, {"status": status} if status else {}, limit=limit, after=None)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
    elif found:
        click.echo(_table([LISTED, *([_cell(job[column]) for column in LISTED] for job in found)]))
    else:
        click.echo("Aucun job")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(rows: list[Any]) -> str:
    """Columns aligned on their widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@jobs_commands.command("purge")
@click.option("--deliveries-days", type=click.FloatRange(0, min_open=True), help="[défaut: DELIVERY_RETENTION_DAYS]")
@click.option("--jobs-days", type=click.FloatRange(0, min_open=True), help="[défaut: JOB_RETENTION_DAYS]")
@with_database()
def purge(db: Database, deliveries_days: float | None, jobs_days: float | None) -> None:
    """Supprime les livraisons et les jobs plus anciens que leur rétention, efface les corps des livraisons de
    progression plus anciens que PROGRESS_BODY_RETENTION_DAYS, par petits lots."""
    settings = service().settings
    delivery_days = deliveries_days or settings.delivery_retention_days
    job_days = jobs_days or settings.job_retention_days
    images = service().images
    release = file_release(images) if images is not None else None
    body_days = settings.progress_body_retention_days
    removed = retention.purge(db, delivery_days=delivery_days, job_days=job_days, body_days=body_days, release=release)
    click.echo(f"{removed[0]} livraison(s) de plus de {delivery_days:g} jour(s) supprimée(s)")
    click.echo(f"{removed[1]} job(s) de plus de {job_days:g} jour(s) supprimé(s)")
    click.echo(f"{removed[2]} corps de progression de plus de {body_days:g} jour(s) effacé(s)")
