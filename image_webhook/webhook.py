"""The webhook blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from . import processing
from .body import read_body
from .context import RequestState, Service, current_request, service
from .db import jobs
from .db.deliveries import Delivery, record_later
from .idempotence import claimed
from .logs import LOGGER
from .processing import DUPLICATE, DUPLICATE_BODY
from .validation import INTERMEDIATE_STATUSES, STATUSES, parse_json

bp = Blueprint("webhook", __name__)
log = logging.getLogger(LOGGER)
METRIC_OUTCOME = {"progress": "intermediate"}  # the deliveries' outcome "progress" keeps its metrics label
REFUSED_BODY_KEPT = 64 * 1024  # bytes of a refused delivery's body the deliveries table keeps


@bp.post("/api/webhooks/image-completion")
def image_completion() -> Response:
    """Authenticate, read the body, refuse a replayed signed message, then handle the notification."""
    state, hook = _state(), service()
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...", extra={"event": "reception"})
    signed = hook.auth.check_headers(request.headers)
    # with a database, every authenticated delivery is kept, its body refused or not; the stateless mode keeps none
    delivery = Delivery(raw=None, client_address=request.remote_addr) if hook.db is not None else None
    state.delivery = None if signed else delivery
    raw = read_body(hook.deadlines)
    if delivery is not None:
        delivery.raw = raw
    if not signed:
        return handle(raw, hook, state)
    message_id = hook.auth.verify_signature(request.headers, raw)
    if delivery is not None:
        delivery.message_id = message_id
    state.delivery = delivery
    with claimed(hook.messages, message_id) as new:
        if not new:
            state.outcome = "duplicate"
            log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", message_id, extra={"event": "replay"})
            if delivery is not None and hook.db is not None:  # kept as a duplicate, as another worker's database would
                state.recorded = True
                delivery.response_body = DUPLICATE_BODY
                record_later(hook.db, delivery, "duplicate", 200)
            return jsonify(DUPLICATE)
        return handle(raw, hook, state)


def handle(raw: bytes, hook: Service, state: RequestState) -> Response:
    """Validate the notification, then record it (with a database) or acknowledge it and process it once."""
    payload = parse_json(raw)
    if state.delivery is not None:
        state.delivery.describe(payload)
    status = payload.get("status") if isinstance(payload, dict) else None
    state.status = status if isinstance(status, str) and status in STATUSES else None  # logs, metrics labels
    hook.validator.validate(payload)
    state.job_id = job_id = payload["job_id"]
    processing.log_payload(payload)
    if hook.db is not None:
        if status not in INTERMEDIATE_STATUSES and hook.jobs.seen(job_id):  # the fast path: completed lately
            return _duplicate(hook, state, job_id)
        return _record(payload, hook, state)
    if status in INTERMEDIATE_STATUSES:
        state.outcome = "intermediate"
        processing.log_progress(payload, late=hook.jobs.seen(job_id))
        return jsonify(processing.progress_answer(payload))
    with claimed(hook.jobs, job_id) as new:
        if not new:
            return _duplicate(hook, state, job_id)
        processing.log_terminal(payload)
        hook.on_job(payload)
    return jsonify(_processed(payload, hook, state))


def _record(payload: dict[str, Any], hook: Service, state: RequestState) -> Response:
    """The database decides and records, in one transaction; the answer leaves after its commit."""
    assert hook.db is not None and state.delivery is not None
    decision, body = jobs.record(
        hook.db, payload, state.delivery, on_job=hook.on_job, answer=lambda decision: _answer(decision, payload, state)
    )
    state.recorded = True
    state.outcome = METRIC_OUTCOME.get(decision.outcome, decision.outcome)
    job_id = payload["job_id"]
    if decision.completed:  # the fast path learns every completed job it meets, processed here or not
        with contextlib.suppress(HTTPException):  # it is a cache: the record is on disk
            hook.jobs.claim(job_id)
    if decision.replay:
        log.warning("⚠️ [Image Webhook] Message signé rejoué: %s", state.delivery.message_id, extra={"event": "replay"})
    elif decision.outcome == "duplicate":
        log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id, extra={"event": "duplicate"})
        if decision.after_completed:
            log.warning(
                "⚠️ [Image Webhook] Échec reçu après la réussite du job (ignoré): %s",
                job_id,
                extra={"event": "failed_after_completed"},
            )
    elif decision.outcome in ("progress", "stale"):  # logged here, in the request's thread, once committed
        processing.log_progress(payload, late=decision.outcome == "stale")
    elif decision.outcome == "processed":
        if decision.replaced_failed:
            log.warning(
                "⚠️ [Image Webhook] Réussite reçue après un échec: le job est remplacé: %s",
                job_id,
                extra={"event": "completed_after_failed"},
            )
        processing.log_terminal(payload)
        _finish(payload, body, hook)
    return jsonify(body)


def _answer(decision: jobs.Decision, payload: dict[str, Any], state: RequestState) -> dict[str, Any]:
    if decision.outcome == "duplicate":
        return DUPLICATE
    if decision.outcome in ("progress", "stale"):
        return processing.progress_answer(payload)
    return processing.terminal_answer(payload, state.elapsed_ms())


def _duplicate(hook: Service, state: RequestState, job_id: str) -> Response:
    state.outcome = "duplicate"
    log.warning("⚠️ [Image Webhook] Job déjà traité: %s", job_id, extra={"event": "duplicate"})
    if hook.db is not None and state.delivery is not None:
        state.recorded = True
        state.delivery.response_body = DUPLICATE_BODY
        jobs.count_duplicate(hook.db, state.delivery)
    return jsonify(DUPLICATE)


def _processed(payload: dict[str, Any], hook: Service, state: RequestState) -> dict[str, Any]:
    """Close a processed notification of the stateless mode: its time in the answer, metrics, ⏱️."""
    state.outcome = "processed"
    body = processing.terminal_answer(payload, state.elapsed_ms())
    _finish(payload, body, hook)
    return body


def _finish(payload: dict[str, Any], body: dict[str, Any], hook: Service) -> None:
    milliseconds = body["processing_time_ms"]
    hook.metrics.processed(payload, milliseconds / 1000)
    hook.count_processed()
    log.info(
        "⏱️ [Image Webhook] Traitement terminé en %sms",
        milliseconds,
        extra={"event": "processed", "processing_time_ms": milliseconds},
    )


@bp.after_request
def count(response: Response) -> Response:
    """Count every answer of the webhook by status and outcome (closed sets); with a database, keep every
    authenticated delivery the handling did not record itself (refused ones, answered 4xx or 5xx)."""
    state, hook = _state(), service()
    hook.metrics.count(state.status, state.outcome or "error")
    delivery = state.delivery
    if hook.db is not None and delivery is not None and not state.recorded and state.outcome != "unauthorized":
        delivery.response_body = response.get_data(as_text=True)[:4096]
        delivery.reason = state.outcome
        if delivery.raw is not None and len(delivery.raw) > REFUSED_BODY_KEPT:
            # a refused body is kept to show what arrived, not to replay it: a sender looping 1 MiB refusals
            # would otherwise write 100 MB/s and hold every other delivery behind the database's lock
            delivery.reason = f"{state.outcome} (corps de {len(delivery.raw)} octets, {REFUSED_BODY_KEPT} gardés)"
            delivery.raw = delivery.raw[:REFUSED_BODY_KEPT]
        outcome = (
            "unavailable" if state.outcome == "unavailable" else "error" if response.status_code >= 500 else "rejected"
        )
        record_later(hook.db, delivery, outcome, response.status_code)
    return response


def _state() -> RequestState:
    state = current_request()
    assert state is not None, "create_app() begins every request's state"
    return state
