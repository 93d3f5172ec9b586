"""The webhook blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import processing
from .body import read_body
from .context import RequestState, Service, current_request, service
from .idempotence import claimed
from .logs import LOGGER
from .validation import INTERMEDIATE_STATUSES, STATUSES, parse_json

bp = Blueprint("webhook", __name__)
log = logging.getLogger(LOGGER)
DUPLICATE = {"success": True, "message": "Job déjà traité"}


@bp.post("/api/webhooks/image-completion")
def image_completion() -> Response:
    """Authenticate, read the body, refuse a replayed signed message, then handle the notification."""
    state, hook = _state(), service()
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...", extra={"event": "reception"})
    signed = hook.auth.check_headers(request.headers)
    raw = read_body(hook.deadlines)
    if not signed:
        return handle(raw, hook, state)
    message_id = hook.auth.verify_signature(request.headers, raw)
    with claimed(hook.messages, message_id) as new:
        if not new:
            state.outcome = "duplicate"
            log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", message_id, extra={"event": "replay"})
            return jsonify(DUPLICATE)
        return handle(raw, hook, state)


def handle(raw: bytes, hook: Service, state: RequestState) -> Response:
    """Validate the notification, then acknowledge it or process it once."""
    payload = parse_json(raw)
    status = payload.get("status") if isinstance(payload, dict) else None
    state.status = status if isinstance(status, str) and status in STATUSES else None  # logs, metrics labels
    hook.validator.validate(payload)
    state.job_id = job_id = payload["job_id"]
    processing.log_payload(payload)
    if status in INTERMEDIATE_STATUSES:
        state.outcome = "intermediate"
        return jsonify(processing.acknowledge_progress(payload, late=hook.jobs.seen(job_id)))
    with claimed(hook.jobs, job_id) as new:
        if not new:
            state.outcome = "duplicate"
            log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id, extra={"event": "duplicate"})
            return jsonify(DUPLICATE)
        body = processing.process_terminal(payload, hook.on_job)
    return jsonify(_processed(payload, body, hook, state))


def _processed(payload: dict[str, Any], body: dict[str, Any], hook: Service, state: RequestState) -> dict[str, Any]:
    """Close a processed notification: its time in the answer, the metrics and the ⏱️ line."""
    state.outcome = "processed"
    body["processing_time_ms"] = milliseconds = state.elapsed_ms()
    hook.metrics.processed(payload, milliseconds / 1000)
    hook.count_processed()
    log.info(
        "⏱️ [Image Webhook] Traitement terminé en %sms",
        milliseconds,
        extra={"event": "processed", "processing_time_ms": milliseconds},
    )
    return body


@bp.after_request
def count(response: Response) -> Response:
    """Count every answer of the webhook by status and outcome (closed sets)."""
    state = _state()
    service().metrics.count(state.status, state.outcome or "error")
    return response


def _state() -> RequestState:
    state = current_request()
    assert state is not None, "create_app() begins every request's state"
    return state
