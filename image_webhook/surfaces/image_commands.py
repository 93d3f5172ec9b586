"""The operators' commands of the image copies: `flask --app app images status|retry|work`."""

from __future__ import annotations

import json
import signal
import threading

import click
from flask import Flask
from flask.cli import AppGroup

from ..service import service
from ..storage.database import Database, copies, jobs
from .commands import Failure, with_database

images_commands = AppGroup("images", help="Les copies des images: leur état, un nouvel essai, les copieurs.")


def register(app: Flask) -> None:
    app.cli.add_command(images_commands)


@images_commands.command("status")
@click.argument("job_id")
@with_database()
def status(db: Database, job_id: str) -> None:
    """L'état de la copie de chaque image du job, en JSON, dans l'ordre de ses images."""
    job = jobs.find(db, job_id)
    if job is None:
        raise Failure(f"Job inconnu: {job_id}")
    made = job["copies"]  # none for a job recorded before the copies existed
    found = [
        {"index": n, "url": image.get("url"), "copy": made[n] if n < len(made) else None}
        for n, image in enumerate(job["images"] or [])
    ]
    click.echo(json.dumps(found, ensure_ascii=False, indent=2))


@images_commands.command("retry")
@click.argument("job_id")
@with_database()
def retry(db: Database, job_id: str) -> None:
    """Remettre en file les copies échouées ou refusées du job, toutes leurs tentatives rendues."""
    if jobs.find(db, job_id) is None:
        raise Failure(f"Job inconnu: {job_id}")
    click.echo(f"{copies.retry(db, job_id)} copie(s) échouée(s) ou refusée(s) remise(s) en file")


@images_commands.command("work")
@click.option("--concurrency", type=click.IntRange(1, 64), help="Copies à la fois [défaut: IMAGE_COPY_CONCURRENCY].")
@with_database()
def work(db: Database, concurrency: int | None) -> None:
    """Faire tourner les copieurs seuls jusqu'à SIGTERM ou Ctrl-C, puis finir les copies en cours."""
    components = service()
    copiers = components.copiers
    assert copiers is not None  # a database gives copiers
    copiers.concurrency = concurrency or components.settings.image_copy_concurrency or 1
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    copiers.start(background=False)  # this process serves no request: full speed
    click.echo(f"Copieurs démarrés ({copiers.concurrency}): SIGTERM ou Ctrl-C pour les arrêter", err=True)
    stopping.wait()
    click.echo("Arrêt: les copies en cours se terminent", err=True)
    # with_database stops the service, and with it the copiers (COPIES_GRACE)
