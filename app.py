"""The application factory: configuration, validator, idempotence store and blueprint, set up once."""
from dataclasses import dataclass

from flask import Flask

import errors
import logs
import processing
from auth import Authenticator
from openapi import bundled_document
from config import load_settings, weak_secret_warnings
from reading import BodyDeadlines
from store import CleanupThread, IdempotenceStore
from validation import PayloadValidator
from webhook import bp


@dataclass
class ImageWebhook:
    """Per-application state, kept in app.extensions["image_webhook"]."""

    auth: Authenticator
    validator: PayloadValidator
    store: IdempotenceStore
    cleanup: CleanupThread
    on_job: object
    openapi: dict
    deadlines: BodyDeadlines

    def stop(self):
        """Stop the background threads (tests, and gunicorn's worker exit)."""
        self.cleanup.stop()
        self.deadlines.stop()


def create_app(config=None, *, environ=None):
    """Create the service: defaults, then the environment (`environ`, default os.environ + .env), then `config`."""
    settings = load_settings(config, environ)
    app = Flask(__name__)
    app.config.from_mapping(settings)
    app.json.ensure_ascii = False  # French messages read as they are, in UTF-8
    app.json.sort_keys = False
    log = logs.configure(settings["LOG_LEVEL"])
    for warning in weak_secret_warnings(settings):
        log.warning("⚠️ [Image Webhook] %s", warning)

    validator = PayloadValidator()
    store = IdempotenceStore(
        window=settings["IDEMPOTENCE_WINDOW"],
        max_entries=settings["IDEMPOTENCE_MAX_ENTRIES"],
        **({"clock": settings["CLOCK"]} if "CLOCK" in settings else {}),
    )
    cleanup = CleanupThread(store, settings["CLEANUP_INTERVAL"])
    app.extensions["image_webhook"] = ImageWebhook(
        auth=Authenticator(
            mode=settings["WEBHOOK_AUTH"],
            secrets=settings["WEBHOOK_SECRET"],
            signing_secrets=settings["WEBHOOK_SIGNING_SECRET"],
            required=settings["APP_ENV"] == "production",
        ),
        validator=validator,
        store=store,
        cleanup=cleanup,
        on_job=settings.get("JOB_HANDLER", processing.ignore_job),
        openapi=bundled_document(schemas=validator.schemas),
        deadlines=BodyDeadlines(tick=min(0.5, settings["BODY_TIMEOUT"] / 4)),
    )
    errors.register(app)
    app.register_blueprint(bp)
    # gunicorn imports the app in each worker after the fork, so each worker runs its own threads
    cleanup.start()
    app.extensions["image_webhook"].deadlines.start()
    log.info("ℹ️ [Image Webhook] Prêt: APP_ENV=%s, WEBHOOK_AUTH=%s, fenêtre d'idempotence %ss",
             settings["APP_ENV"], settings["WEBHOOK_AUTH"], settings["IDEMPOTENCE_WINDOW"])
    return app
