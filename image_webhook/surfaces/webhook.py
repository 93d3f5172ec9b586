"""The webhook blueprint: POST /api/webhooks/image-completion, from the request to the JSON answer."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from ..domain.notifications import Delivery
from ..domain.values import Status
from ..intake.body import read_body
from ..intake.parsing import parse_json
from ..observability.context import RequestState, current_request
from ..observability.logs import LOGGER
from ..recording import Recorded, journal
from ..service import Service, service
from ..storage.idempotence import claimed

bp = Blueprint("webhook", __name__)
log = logging.getLogger(LOGGER)


@bp.post("/api/webhooks/image-completion")
def image_completion() -> Response:
    """Authenticate, read the body, refuse a replayed signed message, validate, then hand it to the recorder."""
    state, components = _state(), service()
    log.info("🎨 [Image Webhook] Réception d'un webhook de génération d'images...", extra={"event": "reception"})
    signed = components.auth.check_headers(request.headers)
    delivery = Delivery(client_address=request.remote_addr)
    if not signed:  # authenticated by its header (or development): kept from here on, even if its body is refused
        state.delivery = delivery
    delivery.raw = read_body(components.deadlines, components.settings.max_content_length)
    if not signed:
        return _answer(state, _record(components, state, delivery))
    delivery.message_id = components.auth.verify_signature(request.headers, delivery.raw)
    state.delivery = delivery  # authenticated by its signature
    with claimed(components.messages, delivery.message_id) as new:
        if not new:
            return _answer(state, components.recorder.replayed(delivery))
        return _answer(state, _record(components, state, delivery))


def _record(components: Service, state: RequestState, delivery: Delivery) -> Recorded:
    """Parse and validate the body (400 otherwise), then let the recorder decide and record it."""
    assert delivery.raw is not None
    payload = parse_json(delivery.raw)
    delivery.describe(payload)
    state.status = Status.named(payload.get("status")) if isinstance(payload, dict) else None
    notification = components.validator.validate(payload)
    state.job_id = notification.job_id
    journal.payload(notification)
    return components.recorder.record(notification, delivery)


def _answer(state: RequestState, recorded: Recorded) -> Response:
    state.outcome = recorded.outcome
    response = jsonify(recorded.body)
    response.status_code = recorded.status
    return response


@bp.after_request
def count(response: Response) -> Response:
    """Count every answer of the webhook by status and outcome (closed sets), and hand every refused
    authenticated delivery to the recorder (kept where deliveries are kept)."""
    state, components = _state(), service()
    components.metrics.count(state.status, state.outcome)
    if state.delivery is not None and response.status_code >= 400:
        answer = response.get_data(as_text=True)
        components.recorder.refused(state.delivery, outcome=state.outcome, status=response.status_code, answer=answer)
    return response


def _state() -> RequestState:
    state = current_request()
    assert state is not None, "create_app() begins every request's state"
    return state
