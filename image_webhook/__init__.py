"""The image-completion webhook: `create_app()` builds the service, set up once per worker process.

The package reads from the top down (each layer imports only the ones below it; `make lint` checks it):
surfaces (the HTTP blueprints and the commands) and server (gunicorn's worker and loggers), then service
(the components, built once), then intake (credentials, body, JSON, schemas) beside recording (what a
notification does, one recorder per mode), then storage, observability and the domain values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

__all__ = ["create_app", "shutdown", "start_copiers"]


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
    from .domain.settings import load_settings
    from .observability import logs
    from .service import EXTENSION
    from .service.assembly import build_service
    from .surfaces import api, commands, errors, image_commands, ops, pages, webhook
    from .surfaces.application import WebhookFlask, track_requests
    from .surfaces.forwarded import TrustedForwarded
    from .surfaces.hosts import guard_hosts

    settings = load_settings(config, environ)
    app = WebhookFlask(__name__, static_folder=None, template_folder=None)  # the page's blueprint serves them
    # `/api//jobs` is an unknown route (404 JSON), never a 308 to an address built from the caller's Host
    app.url_map.merge_slashes = False
    # the client's address behind the HTTPS front, believed from FORWARDED_ALLOW_IPS only (docs/deploy.md)
    app.wsgi_app = TrustedForwarded(app.wsgi_app, settings.forwarded_allow_ips)  # type: ignore[method-assign]
    # the start-up lines (the warnings, ℹ️ Prêt) are the server's, once: gunicorn.conf.py's when_ready
    logs.configure(settings.log_level, settings.log_format)
    service = build_service(settings, clock=clock, job_handler=job_handler)
    app.extensions[EXTENSION] = service
    errors.register(app)
    track_requests(app)
    guard_hosts(app, settings.allowed_hosts)  # after the request's id, before every blueprint's credentials
    app.register_blueprint(webhook.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(pages.bp)  # /jobs: the page, its JSON views and the static files (HTTP Basic in production)
    commands.register(app)  # the operators' commands: flask --app app db|jobs ...
    image_commands.register(app)  # ... and images
    service.start()  # gunicorn imports the app in each worker after the fork: each worker runs its own threads
    return app


def start_copiers(app: Flask | None) -> None:
    """Start the app's image copiers, where it serves requests (gunicorn's worker, once it is up)."""
    service = _service_of(app)
    if service is not None and service.copiers is not None:
        service.copiers.start()


def shutdown(app: Flask | None) -> None:
    """A worker's last words (gunicorn's worker_exit): stop the threads, say how much was done, flush."""
    from .observability import logs

    service = _service_of(app)
    if service is None:
        return
    service.stop()
    # the service's logger as create_app() set it up (configure() again would reset its format)
    logs.logger().info(
        "ℹ️ [Image Webhook] Arrêt du worker: %d job(s) traité(s) depuis son démarrage",
        service.recorder.processed_jobs,
        extra={"event": "shutdown"},
    )
    logs.flush()


def _service_of(app: Flask | None) -> Any:
    """The Service of what gunicorn's worker loaded (the app, or nothing if it failed to load)."""
    from .service import EXTENSION

    return app.extensions.get(EXTENSION) if isinstance(app, Flask) else None
