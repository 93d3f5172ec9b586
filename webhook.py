"""The blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""
import logging
import time

from flask import Blueprint, current_app, g, jsonify, request

import processing
from errors import elapsed_ms
from reading import parse_json, read_body
from validation import INTERMEDIATE_STATUSES, STATUSES

bp = Blueprint("webhook", __name__)
log = logging.getLogger("image_webhook")
DUPLICATE = {"success": True, "message": "Job déjà traité"}
MESSAGE = "#message "  # key prefix of signed messages' ids in the store ('#' is never in a job_id)


@bp.post("/api/webhooks/image-completion")
def image_completion():
    """Authenticate, read the body, refuse a replayed signed message, then handle the notification."""
    state = g._get_current_object()  # g, looked up once: it is read and written all along the request
    state.started = time.perf_counter()
    hook = current_app.extensions["image_webhook"]
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...", extra={"event": "reception"})
    signed = hook.auth.check_headers(request.headers)
    raw = read_body(hook.deadlines)
    if not signed:
        return handle(raw, hook, state)
    message_id = hook.auth.verify_signature(request.headers, raw)
    with hook.store.holding(MESSAGE + message_id) as first_time:
        if first_time is None:
            state.outcome = "duplicate"
            log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", message_id, extra={"event": "replay"})
            return jsonify(DUPLICATE)
        return handle(raw, hook, state)


def handle(raw, hook, state):
    """Validate the notification, then acknowledge it or process it once."""
    payload = parse_json(raw)
    status = payload.get("status") if isinstance(payload, dict) else None
    state.status = status if isinstance(status, str) and status in STATUSES else None  # logs, metrics labels
    hook.validator.validate(payload)
    state.job_id = job_id = payload["job_id"]
    processing.log_payload(payload)
    if status in INTERMEDIATE_STATUSES:
        state.outcome = "intermediate"
        return jsonify(processing.acknowledge_progress(payload, late=hook.store.seen(job_id)))
    with hook.store.holding(job_id) as claim:
        if claim is None:
            state.outcome = "duplicate"
            log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id, extra={"event": "duplicate"})
            return jsonify(DUPLICATE)
        body = processing.process_terminal(payload, hook.on_job)
    state.outcome = "processed"
    body["processing_time_ms"] = milliseconds = elapsed_ms(state.started)
    hook.metrics.processed(payload, milliseconds / 1000)
    hook.count_processed()
    log.info("⏱️ [Image Webhook] Traitement terminé en %sms", milliseconds,
             extra={"event": "processed", "processing_time_ms": milliseconds})
    return jsonify(body)
