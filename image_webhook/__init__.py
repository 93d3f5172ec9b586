"""The image-completion webhook: `create_app()` builds the service, set up once per worker process."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response as AnyResponse

from .config import load_settings, startup_warnings
from .context import EXTENSION, RequestIds, Service, begin_request, current_request, end_request

__all__ = ["create_app", "shutdown"]
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # an incoming X-Request-ID must look like this


class AnswerJson(DefaultJSONProvider):
    """Flask's JSON in UTF-8 (the French messages), keys in the order written; the answers' encoder is built
    once, where json.dumps(default=...) builds one per answer (BENCHMARKS.md)."""

    ensure_ascii = False
    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=self.default)

    def response(self, *args: Any, **kwargs: Any) -> AnyResponse:
        body = self.encoder.encode(self._prepare_response_obj(args, kwargs))
        return self._app.response_class(body + "\n", mimetype=self.mimetype)


class WebhookFlask(Flask):
    """Flask, with an OPTIONS answer that is no page: 204 and the Allow header, no body."""

    json_provider_class = AnswerJson

    def make_default_options_response(self) -> Response:
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    job_handler: Callable[[dict[str, Any]], object] | None = None,
) -> Flask:
    """Create the service: defaults, then the environment (`environ`, default os.environ + .env), then
    `config` (setting names only); `clock` drives the memory stores, `job_handler` processes each job."""
    # Imported here, in the worker, not when gunicorn.conf.py reads the configuration in the master:
    # prometheus-client picks its multiprocess mode when it is first imported.
    from . import api, cli, errors, logs, ops, pages, processing, webhook
    from .auth import Authenticator, BasicUsers, BearerTokens
    from .body import BodyDeadlines
    from .db import open_database
    from .idempotence import make_cleanup, make_stores
    from .metrics import Metrics
    from .openapi import bundled_document
    from .validation import PayloadValidator

    settings = load_settings(config, environ)
    app = WebhookFlask(__name__, static_folder=None)  # the pages blueprint serves static/ behind its gate
    app.config.from_mapping(settings)
    log = logs.configure(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    for warning in startup_warnings(settings):
        log.warning("⚠️ [Image Webhook] %s", warning, extra={"event": "configuration"})

    metrics = Metrics()
    jobs, messages = make_stores(settings, metrics, clock)
    db = open_database(settings["DATABASE_URL"], timeout=settings["DB_TIMEOUT"]) if settings["DATABASE_URL"] else None
    cleanup = make_cleanup(settings, metrics, (jobs, messages), db)
    validator = PayloadValidator()
    app.extensions[EXTENSION] = hook = Service(
        readers=BearerTokens(settings["JOBS_API_TOKENS"], required=settings["APP_ENV"] == "production"),
        page_users=BasicUsers(settings["DASHBOARD_USERS"], required=settings["APP_ENV"] == "production"),
        auth=Authenticator(
            mode=settings["WEBHOOK_AUTH"],
            secrets=settings["WEBHOOK_SECRET"],
            signing_secrets=settings["WEBHOOK_SIGNING_SECRET"],
            required=settings["APP_ENV"] == "production",
        ),
        validator=validator,
        jobs=jobs,
        messages=messages,
        cleanup=cleanup,
        deadlines=BodyDeadlines(settings["BODY_TIMEOUT"]),
        metrics=metrics,
        on_job=job_handler or processing.ignore_job,
        openapi=bundled_document(schemas=validator.schemas),
        db=db,
    )
    if db is not None:
        db.writer.on_commit, db.writer.on_error = metrics.committed, metrics.database_errors.inc
    errors.register(app)
    request_ids = RequestIds()
    app.before_request(lambda: _begin(request_ids))
    app.after_request(_return_request_id)
    app.teardown_request(lambda exc: end_request())
    app.register_blueprint(webhook.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)  # /jobs: the page, its JSON views and the static files (HTTP Basic in production)
    cli.register(app)  # the operators' commands: flask --app app db|jobs ...
    # gunicorn imports the app in each worker after the fork, so each worker runs its own threads
    if cleanup is not None:
        cleanup.start()
    hook.deadlines.start()
    log.info(
        "ℹ️ [Image Webhook] Prêt: APP_ENV=%s, WEBHOOK_AUTH=%s, fenêtre d'idempotence %ss, base de données %s",
        settings["APP_ENV"],
        settings["WEBHOOK_AUTH"],
        settings["IDEMPOTENCE_WINDOW"],
        db.dialect if db is not None else "aucune",
        extra={"event": "ready"},
    )
    return app


def _begin(request_ids: RequestIds) -> None:
    """Keep a well-formed incoming X-Request-ID, otherwise make one; every log line of the request has it."""
    incoming = request.headers.get("X-Request-ID", "")
    begin_request(incoming if REQUEST_ID.fullmatch(incoming) else request_ids())


def _return_request_id(response: Response) -> Response:
    state = current_request()
    response.headers["X-Request-ID"] = state.request_id if state is not None else ""
    return response


def shutdown(app: Flask | None) -> None:
    """A worker's last words (gunicorn's worker_exit): stop the threads, say how much was done, flush."""
    from . import logs

    hook = app.extensions.get(EXTENSION) if isinstance(app, Flask) else None
    if hook is None:
        return
    hook.stop()
    # the service's logger as create_app() set it up (configure() again would reset its format)
    logs.logger().info(
        "ℹ️ [Image Webhook] Arrêt du worker: %d job(s) traité(s) depuis son démarrage",
        hook.processed_jobs,
        extra={"event": "shutdown"},
    )
    logs.flush()
