"""The blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""
import logging
import time

from flask import Blueprint, current_app, g, jsonify, request

import processing
from auth import authenticate
from errors import elapsed_ms
from reading import read_json_object
from validation import INTERMEDIATE_STATUSES

bp = Blueprint("webhook", __name__)
log = logging.getLogger("image_webhook")
DUPLICATE = {"success": True, "message": "Job déjà traité"}


@bp.post("/api/webhooks/image-completion")
def image_completion():
    """Authenticate, parse, validate, then acknowledge or process the notification once."""
    g.started = started = time.perf_counter()
    hook = current_app.extensions["image_webhook"]
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...")
    authenticate(request.headers, secrets=hook.secrets, required=hook.production)
    payload = read_json_object()
    hook.validator.validate(payload)
    processing.log_payload(payload)
    job_id, status = payload["job_id"], payload["status"]
    if status in INTERMEDIATE_STATUSES:
        return jsonify(processing.acknowledge_progress(payload, late=hook.store.seen(job_id)))
    claim = hook.store.claim(job_id)
    if claim is None:
        log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id)
        return jsonify(DUPLICATE)
    try:
        body = processing.process_terminal(payload, hook.on_job)
    except BaseException:
        hook.store.release(job_id, claim)  # not processed: the backend's retry must be
        raise
    body["processing_time_ms"] = elapsed_ms(started)
    log.info("⏱️ [Image Webhook] Traitement terminé en %sms", body["processing_time_ms"])
    return jsonify(body)


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document, bundled once at start-up."""
    return jsonify(current_app.extensions["image_webhook"].openapi)
