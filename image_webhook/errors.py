"""The one JSON error path: every error the service answers is built by `error_response`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError

from .context import current_request
from .logs import LOGGER, LazyJson
from .server_errors import ONLY_CHUNKED

log = logging.getLogger(LOGGER)

# the French sentences a developer sees next to the HTTP reason phrase
MESSAGES = {
    404: "Route inconnue : le webhook est POST /api/webhooks/image-completion",
    405: "Méthode non autorisée sur cette route",
    408: "Corps de requête incomplet ou trop lent à arriver",
    413: "Corps de requête trop volumineux",
    415: "Le Content-Type doit être application/json (UTF-8), le Content-Encoding absent, identity ou gzip",
    501: ONLY_CHUNKED,
}
# the metrics' outcome of each rejection by status code (InvalidPayload carries its own)
OUTCOME_BY_CODE = {
    401: "unauthorized",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class InvalidPayload(BadRequest):
    """A body that is not a notification the service accepts: 400 with an error and, if any, details;
    `outcome` is its label in the metrics."""

    def __init__(
        self, error: str, details: list[dict[str, str]] | None = None, *, outcome: str = "invalid_payload"
    ) -> None:
        super().__init__(error)
        self.details = details
        self.outcome = outcome


def error_response(status: int, error: str, **fields: Any) -> Response:
    """Return a JSON error response: {"error": ..., **fields}."""
    response = jsonify(error=error, **fields)
    response.status_code = status
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    """Turn every HTTPException (400, 401, 404, 405, 413, 415...) into a JSON error."""
    code = exc.code or 500
    details = exc.details if isinstance(exc, InvalidPayload) else None
    if isinstance(exc, InvalidPayload):
        error = exc.description or "Payload invalide"
        response = error_response(code, error, **({"details": details} if details else {}))
    elif code == 401:
        error = "Unauthorized"
        response = error_response(401, error)
    else:
        error = exc.name
        # the exception's own sentence when it was given one, else the service's French sentence for the code
        own = exc.description if exc.description != type(exc).description else None
        response = error_response(code, error, message=own or MESSAGES.get(code, exc.description))
    state = current_request()
    if state is not None:
        state.outcome = getattr(exc, "outcome", None) or OUTCOME_BY_CODE.get(code, "error")
    log.warning(
        "⚠️ [Image Webhook] Requête refusée: %s %s %s",
        code,
        error,
        LazyJson(details) if details else "",
        extra={"event": "rejected"},
    )
    for name, value in exc.get_headers():  # keeps Allow on 405, Retry-After on 503
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def handle_internal_error(exc: InternalServerError) -> Response:
    """Answer an unexpected exception with the spec's 500 body, never a traceback."""
    original = exc.original_exception or exc
    state = current_request()
    log.error("❌ [Image Webhook] Erreur interne: %s", type(original).__name__, extra={"event": "error"})
    fields = {"processing_time_ms": state.elapsed_ms()} if state is not None else {}
    if state is not None:
        state.outcome = "error"
    return error_response(
        500, "Internal server error", message="Erreur inattendue pendant le traitement du webhook", **fields
    )


def register(app: Flask) -> None:
    """Install the JSON error handlers on `app`."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InternalServerError, handle_internal_error)
