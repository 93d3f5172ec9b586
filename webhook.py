"""The blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""
import logging
import time

from flask import Blueprint, current_app, g, jsonify, request

import processing
from errors import elapsed_ms
from reading import parse_json, read_body
from validation import INTERMEDIATE_STATUSES

bp = Blueprint("webhook", __name__)
log = logging.getLogger("image_webhook")
DUPLICATE = {"success": True, "message": "Job déjà traité"}
MESSAGE = "#message "  # key prefix of signed messages' ids in the store ('#' is never in a job_id)


@bp.post("/api/webhooks/image-completion")
def image_completion():
    """Authenticate, read the body, refuse a replayed signed message, then handle the notification."""
    g.started = time.perf_counter()
    hook = current_app.extensions["image_webhook"]
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...")
    signed = hook.auth.check_headers(request.headers)
    raw = read_body()
    if not signed:
        return handle(raw, hook)
    message_id = hook.auth.verify_signature(request.headers, raw)
    with hook.store.holding(MESSAGE + message_id) as first_time:
        if first_time is None:
            log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", message_id)
            return jsonify(DUPLICATE)
        return handle(raw, hook)


def handle(raw, hook):
    """Validate the notification, then acknowledge it or process it once."""
    payload = parse_json(raw)
    hook.validator.validate(payload)
    processing.log_payload(payload)
    job_id, status = payload["job_id"], payload["status"]
    if status in INTERMEDIATE_STATUSES:
        return jsonify(processing.acknowledge_progress(payload, late=hook.store.seen(job_id)))
    with hook.store.holding(job_id) as claim:
        if claim is None:
            log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id)
            return jsonify(DUPLICATE)
        body = processing.process_terminal(payload, hook.on_job)
    body["processing_time_ms"] = elapsed_ms(g.started)
    log.info("⏱️ [Image Webhook] Traitement terminé en %sms", body["processing_time_ms"])
    return jsonify(body)


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document, bundled once at start-up."""
    return jsonify(current_app.extensions["image_webhook"].openapi)
