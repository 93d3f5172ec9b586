"""Building the Service from the Settings: one implementation per mode, chosen here and nowhere else."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..copying.copier import Copiers
from ..copying.fetch import Fetcher
from ..domain.images import image_key, thumbnail_key
from ..domain.settings import Settings
from ..intake.auth import Authenticator, BasicUsers, BearerTokens
from ..intake.body import BodyDeadlines
from ..intake.openapi import served_document
from ..intake.throttle import LoginThrottle
from ..intake.validation import PayloadValidator
from ..observability.metrics import Metrics
from ..recording import Recorder
from ..recording.database import DatabaseRecorder
from ..recording.handler import JobHandler, bounded, ignore_job
from ..recording.window import WindowRecorder
from ..storage.database import Database, copies, open_database, retention
from ..storage.idempotence import IdempotenceStore
from ..storage.idempotence.memory import MemoryStore
from ..storage.idempotence.redis import RedisStore
from ..storage.images import ImageStore, open_store
from . import Service
from .maintenance import MaintenanceThread


def build_service(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.monotonic,
    job_handler: JobHandler | None = None,
) -> Service:
    """The service's components; nothing is started (Service.start, in the worker)."""
    metrics = Metrics()
    jobs, messages = _stores(settings, metrics, clock)
    db = None
    if settings.database_url:
        db = open_database(
            settings.database_url,
            timeout=settings.db_timeout,
            on_commit=metrics.committed,
            on_error=metrics.database_errors.inc,
        )
    handler = job_handler or ignore_job
    validator = PayloadValidator()
    recorder: Recorder
    images, copiers = None, None
    if db is None:  # the specification's window decides alone; nothing is kept, no image is copied
        recorder = WindowRecorder(jobs, metrics, handler)
    else:  # the database decides; the window is its cache; the handler runs inside its transaction, bounded
        images = open_store(settings)
        copiers = _copiers(settings, db, images, metrics)
        recorder = DatabaseRecorder(db, jobs, metrics, bounded(handler, settings.db_timeout), on_images=copiers.wake)
    purging = _retention(settings, db, images) if db is not None and images is not None else None
    return Service(
        settings=settings,
        auth=Authenticator(
            mode=settings.webhook_auth,
            secrets=settings.webhook_secret,
            signing_secrets=settings.webhook_signing_secret,
            required=settings.production,
        ),
        readers=BearerTokens(settings.jobs_api_tokens, required=settings.production),
        page_users=BasicUsers(
            settings.dashboard_users, required=settings.production, throttle=LoginThrottle(clock=clock)
        ),
        validator=validator,
        recorder=recorder,
        messages=messages,
        deadlines=BodyDeadlines(settings.body_timeout),
        metrics=metrics,
        openapi=served_document(settings, schemas=validator.schemas),
        db=db,
        maintenance=_maintenance(settings, metrics, (jobs, messages), purging),
        retention=purging,
        images=images,
        copiers=copiers,
    )


def _copiers(settings: Settings, db: Database, images: ImageStore, metrics: Metrics) -> Copiers:
    """The copiers of this process (not started: gunicorn's workers and `images work` start them)."""

    def queue() -> tuple[int, float | None]:
        found = copies.summary(db)
        return found["counts"]["queued"], found["oldest_queued_seconds"]

    metrics.copy_queue = queue
    return Copiers(
        db,
        images,
        Fetcher.from_settings(settings),
        metrics,
        concurrency=settings.image_copy_concurrency,
        lease=settings.image_copy_lease,
        attempts=settings.image_copy_attempts,
        retry_base=settings.image_retry_base,
    )


def _stores(
    settings: Settings, metrics: Metrics, clock: Callable[[], float]
) -> tuple[IdempotenceStore, IdempotenceStore]:
    """The job and message windows IDEMPOTENCE_BACKEND names (Redis namespaces them `job:` and `message:`)."""
    if settings.idempotence_backend == "redis":
        assert settings.redis_url is not None  # load_settings gives Redis its default URL
        made = [
            RedisStore(
                url=settings.redis_url,
                prefix=settings.idempotence_key_prefix + namespace,
                window=settings.idempotence_window,
                timeout=settings.redis_timeout,
            )
            for namespace in ("job:", "message:")
        ]
        return made[0], made[1]
    jobs, messages = (
        MemoryStore(
            window=settings.idempotence_window,
            max_entries=settings.idempotence_max_entries,
            on_evict=metrics.evictions.inc,
            clock=clock,
        )
        for _ in range(2)
    )
    metrics.count_entries(lambda: len(jobs) + len(messages))
    return jobs, messages


def _retention(settings: Settings, db: Database, images: ImageStore) -> retention.Retention:
    """The retention pass of this process, run by the maintenance thread when it holds the service's lease."""
    return retention.Retention(
        db,
        delivery_days=settings.delivery_retention_days,
        job_days=settings.job_retention_days,
        body_days=settings.progress_body_retention_days,
        release=file_release(images),
    )


def _maintenance(
    settings: Settings,
    metrics: Metrics,
    stores: tuple[IdempotenceStore, ...],
    purging: retention.Retention | None,
) -> MaintenanceThread | None:
    """The thread that expires the memory windows and purges old records, when there is anything to do."""
    memory = [store for store in stores if isinstance(store, MemoryStore)]
    chores = [purging.run] if purging is not None else []
    if not memory and not chores:
        return None
    return MaintenanceThread(
        memory,
        settings.cleanup_interval,
        chores=chores,
        on_run=lambda removed: metrics.cleanup_ran(removed, time.time()),
    )


def file_release(images: ImageStore) -> Callable[[str, str], None]:
    """What retention calls for a file no copy names any more: the file and its thumbnail are deleted."""

    def release(sha256: str, content_type: str) -> None:
        images.delete(image_key(sha256, content_type))
        images.delete(thumbnail_key(sha256))

    return release
