"""What operators and clients read: health probes, Prometheus metrics, the OpenAPI document."""

from flask import Blueprint, jsonify

from ..service import service

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when the service can do its work, else 503 with the reason (no configuration shown)."""
    reason = service().not_ready()
    if reason:
        return jsonify(status="unavailable", reason=reason), 503
    return jsonify(status="ready")


@bp.get("/metrics")
def metrics():
    """Prometheus text format; keep it off the public network (see README)."""
    body, content_type = service().metrics.exposition()
    return body, 200, {"Content-Type": content_type}


@bp.get("/openapi.json")
def openapi_document():
    """The OpenAPI document, bundled once at start-up."""
    return jsonify(service().openapi)
