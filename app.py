"""The application factory: configuration, validator, store, metrics and blueprints, set up once."""
import itertools
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from flask import Flask, current_app, g, request

import errors
import logs
import ops
import processing
from auth import Authenticator
from config import load_settings, weak_secret_warnings
from metrics import Metrics, multiprocess_mode
from openapi import bundled_document
from reading import BodyDeadlines
from redis_store import RedisStore
from store import CleanupThread, IdempotenceStore, Store
from validation import PayloadValidator
from webhook import bp

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # an incoming X-Request-ID must look like this
# generated ids: a random token per process and a counter (uuid4 per request costs a system call)
_ID_TOKEN, _ID_COUNTER = uuid.uuid4().hex[:16], itertools.count()


@dataclass
class ImageWebhook:
    """Per-application state, kept in app.extensions["image_webhook"]."""

    auth: Authenticator
    validator: PayloadValidator
    store: Store
    cleanup: CleanupThread | None  # the memory store's; Redis expires its keys itself
    deadlines: BodyDeadlines
    metrics: Metrics
    on_job: object
    openapi: dict
    processed_jobs: int = field(default=0)  # in this process's life, for the shutdown line
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_processed(self):
        with self._lock:  # += is not atomic across threads
            self.processed_jobs += 1

    def not_ready(self):
        """Why the service cannot do its work, or None."""
        if self.cleanup is not None and not self.cleanup.is_alive():
            return "le nettoyage des jobs traités ne tourne pas"
        return self.store.not_ready()

    def stop(self):
        """Stop the background threads (tests, and gunicorn's worker exit)."""
        if self.cleanup is not None:
            self.cleanup.stop()
        self.deadlines.stop()


def create_app(config=None, *, environ=None):
    """Create the service: defaults, then the environment (`environ`, default os.environ + .env), then `config`."""
    settings = load_settings(config, environ)
    app = Flask(__name__)
    app.config.from_mapping(settings)
    app.json.ensure_ascii = False  # French messages read as they are, in UTF-8
    app.json.sort_keys = False
    log = logs.configure(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    for warning in weak_secret_warnings(settings):
        log.warning("⚠️ [Image Webhook] %s", warning, extra={"event": "configuration"})

    metrics = Metrics()
    store, cleanup = make_store(settings, metrics)
    validator = PayloadValidator()
    hook = ImageWebhook(
        auth=Authenticator(
            mode=settings["WEBHOOK_AUTH"],
            secrets=settings["WEBHOOK_SECRET"],
            signing_secrets=settings["WEBHOOK_SIGNING_SECRET"],
            required=settings["APP_ENV"] == "production",
        ),
        validator=validator,
        store=store,
        cleanup=cleanup,
        deadlines=BodyDeadlines(settings["BODY_TIMEOUT"]),
        metrics=metrics,
        on_job=settings.get("JOB_HANDLER", processing.ignore_job),
        openapi=bundled_document(schemas=validator.schemas),
    )
    app.extensions["image_webhook"] = hook
    errors.register(app)
    app.before_request(assign_request_id)
    app.after_request(finish_request)
    app.register_blueprint(bp)
    app.register_blueprint(ops.bp)
    # gunicorn imports the app in each worker after the fork, so each worker runs its own threads
    if cleanup is not None:
        cleanup.start()
    hook.deadlines.start()
    log.info("ℹ️ [Image Webhook] Prêt: APP_ENV=%s, WEBHOOK_AUTH=%s, fenêtre d'idempotence %ss",
             settings["APP_ENV"], settings["WEBHOOK_AUTH"], settings["IDEMPOTENCE_WINDOW"], extra={"event": "ready"})
    return app


def make_store(settings, metrics):
    """The idempotence store IDEMPOTENCE_BACKEND names, and the memory store's cleanup thread."""
    if settings["IDEMPOTENCE_BACKEND"] == "redis":
        store = RedisStore(url=settings["REDIS_URL"], prefix=settings["IDEMPOTENCE_KEY_PREFIX"],
                           window=settings["IDEMPOTENCE_WINDOW"], timeout=settings["REDIS_TIMEOUT"])
        return store, None
    store = IdempotenceStore(
        window=settings["IDEMPOTENCE_WINDOW"],
        max_entries=settings["IDEMPOTENCE_MAX_ENTRIES"],
        on_evict=metrics.evictions.inc,
        **({"clock": settings["CLOCK"]} if "CLOCK" in settings else {}),
    )
    if not multiprocess_mode():
        metrics.entries.set_function(lambda: len(store))
    cleanup = CleanupThread(store, settings["CLEANUP_INTERVAL"],
                            on_run=lambda removed: metrics.cleanup_ran(removed, time.time()))
    return store, cleanup


def assign_request_id():
    """Keep a well-formed incoming X-Request-ID, otherwise make one; every log line of the request has it."""
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else f"{_ID_TOKEN}{next(_ID_COUNTER):016x}"


def finish_request(response):
    """Return the request id; count every answer of the webhook by status and outcome (closed sets)."""
    state = g._get_current_object()
    response.headers["X-Request-ID"] = getattr(state, "request_id", "")
    if request.endpoint == "webhook.image_completion":
        outcome = getattr(state, "outcome", "error")  # every answer of the view or the error handlers sets it
        current_app.extensions["image_webhook"].metrics.count(getattr(state, "status", None), outcome)
    return response
