"""The one JSON error path: every error the service answers is built here, whatever layer refused it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError

from ..domain.values import Outcome
from ..intake.invalid import InvalidPayload
from ..observability.context import current_request, rest_connection
from ..observability.logs import LOGGER, LazyJson
from ..storage.errors import Unavailable
from .forwarded import PEER

log = logging.getLogger(LOGGER)

# the French sentences a developer sees next to the HTTP reason phrase
MESSAGES = {
    404: "Route inconnue : le webhook est POST /api/webhooks/image-completion",
    405: "Méthode non autorisée sur cette route",
    408: "Corps de requête incomplet ou trop lent à arriver",
    413: "Corps de requête trop volumineux",
    415: "Le Content-Type doit être application/json (UTF-8), le Content-Encoding absent, identity ou gzip",
}
WEBHOOK_ERROR = "Erreur inattendue pendant le traitement du webhook"
OTHER_ERROR = "Erreur inattendue pendant le traitement de la requête"
# the metrics' outcome of each rejection by status code (an exception may carry its own `outcome`)
OUTCOME_BY_CODE = {
    401: Outcome.UNAUTHORIZED,
    408: Outcome.TIMEOUT,
    413: Outcome.TOO_LARGE,
    415: Outcome.UNSUPPORTED_MEDIA_TYPE,
    503: Outcome.UNAVAILABLE,
}


def error_response(status: int, error: str, **fields: Any) -> Response:
    """Return a JSON error response: {"error": ..., **fields}."""
    response = jsonify(error=error, **fields)
    response.status_code = status
    return response


def refusal(
    status: int, error: str, outcome: Outcome, *, details: list[dict[str, str]] | None = None, **fields: Any
) -> Response:
    """A refused request: its outcome on the request's state, one ⚠️ line, and its JSON answer."""
    state = current_request()
    if state is not None:
        state.outcome = outcome
    log.warning(
        "⚠️ [Image Webhook] Requête refusée: %s %s %s",
        status,
        error,
        LazyJson(details) if details else "",
        extra={"event": "rejected"},
    )
    return error_response(status, error, **({"details": details} if details else {}), **fields)


def handle_http_exception(exc: HTTPException) -> Response:
    """Turn every HTTPException (400, 401, 404, 405, 413, 415...) into a JSON error."""
    code = exc.code or 500
    outcome = getattr(exc, "outcome", None) or OUTCOME_BY_CODE.get(code, Outcome.ERROR)
    if code == 401:
        response = refusal(401, "Unauthorized", outcome)
    else:
        # the exception's own sentence when it was given one, else the service's French sentence for the code
        own = exc.description if exc.description != type(exc).description else None
        response = refusal(code, exc.name, outcome, message=own or MESSAGES.get(code, exc.description))
    for name, value in exc.get_headers():  # keeps Allow on 405, WWW-Authenticate on 401, Accept-Encoding on 415
        if name.lower() != "content-type":
            response.headers[name] = value
    wait = getattr(exc, "retry_after", None)
    if code == 429 and isinstance(wait, int) and PEER not in request.environ:
        # told to come back later on its own connection (never a front's, which carries others' requests): the
        # worker reads that connection again only after Retry-After (server/worker.py)
        rest_connection(wait)
    return response


def handle_invalid(exc: InvalidPayload) -> Response:
    """400 for a body or parameter intake refused, with its details."""
    return refusal(400, exc.error or "Payload invalide", exc.outcome, details=exc.details)


def handle_unavailable(exc: Unavailable) -> Response:
    """503 with Retry-After while a store does not answer: the sender retries, nothing was recorded."""
    response = refusal(503, "Service Unavailable", Outcome.UNAVAILABLE, message=exc.message)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def handle_internal_error(exc: InternalServerError) -> Response:
    """Answer an unexpected exception with the spec's 500 body, never a traceback."""
    original = exc.original_exception or exc
    state = current_request()
    log.error("❌ [Image Webhook] Erreur interne: %s", type(original).__name__, extra={"event": "error"})
    fields = {"processing_time_ms": state.elapsed_ms()} if state is not None else {}
    if state is not None:
        state.outcome = Outcome.ERROR
    # the specification's sentence is the webhook's; the read API and the page say what failed in their words
    message = WEBHOOK_ERROR if request.blueprint == "webhook" else OTHER_ERROR
    return error_response(500, "Internal server error", message=message, **fields)


def register(app: Flask) -> None:
    """Install the JSON error handlers on `app`."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(InvalidPayload, handle_invalid)
    app.register_error_handler(Unavailable, handle_unavailable)
    app.register_error_handler(InternalServerError, handle_internal_error)
