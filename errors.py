"""The one JSON error path: every error the service answers is built by `error_response`."""
import logging
import time

from flask import g, jsonify
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

from processing import LazyJson

log = logging.getLogger("image_webhook")

# the French sentences a developer sees next to the HTTP reason phrase
MESSAGES = {
    404: "Route inconnue : le webhook est POST /api/webhooks/image-completion",
    405: "Méthode non autorisée sur cette route",
    408: "Corps de requête incomplet ou trop lent à arriver",
    413: "Corps de requête trop volumineux",
    415: "Le Content-Type doit être application/json (UTF-8)",
}


class InvalidPayload(BadRequest):
    """A body that is not a notification the service accepts: 400 with an error and, if any, details;
    `outcome` is its label in the metrics."""

    def __init__(self, error, details=None, *, outcome="invalid_payload"):
        super().__init__(error)
        self.details = details
        self.outcome = outcome


def error_response(status, error, **fields):
    """Return a JSON error response: {"error": ..., **fields}."""
    response = jsonify(error=error, **fields)
    response.status_code = status
    return response


def elapsed_ms(started):
    """Milliseconds since `started` (a perf_counter value), rounded to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)


# the metrics' outcome of each rejection by status code (InvalidPayload carries its own)
OUTCOME_BY_CODE = {401: "unauthorized", 408: "timeout", 413: "too_large", 415: "unsupported_media_type",
                   503: "unavailable"}


def handle_http_exception(exc):
    """Turn every HTTPException (400, 401, 404, 405, 413, 415...) into a JSON error."""
    if isinstance(exc, InvalidPayload):
        fields = {"details": exc.details} if exc.details else {}
        response = error_response(exc.code, exc.description, **fields)
    elif exc.code == 401:
        response = error_response(401, "Unauthorized")
    else:
        response = error_response(exc.code, exc.name, message=MESSAGES.get(exc.code, exc.description))
    error = response.json["error"]
    g.outcome = getattr(exc, "outcome", None) or OUTCOME_BY_CODE.get(exc.code, "error")
    details = getattr(exc, "details", None)
    log.warning("⚠️ [Image Webhook] Requête refusée: %s %s %s", exc.code, error, LazyJson(details) if details else "",
                extra={"event": "rejected"})
    for name, value in exc.get_headers():  # keeps Allow on 405, Location on redirects
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_internal_error(exc):
    """Answer an unexpected exception with the spec's 500 body, never a traceback."""
    original = getattr(exc, "original_exception", None) or exc
    g.outcome = "error"
    log.error("❌ [Image Webhook] Erreur interne: %s", type(original).__name__, extra={"event": "error"})
    fields = {"processing_time_ms": elapsed_ms(g.started)} if "started" in g else {}
    return error_response(
        500, "Internal server error", message="Erreur inattendue pendant le traitement du webhook", **fields
    )


def register(app):
    """Install the JSON error handlers on `app`."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InternalServerError, handle_internal_error)
