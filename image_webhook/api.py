"""The read API blueprint: /api/jobs for the application that asked for the images (Bearer tokens)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import NotFound

from .auth import Challenge
from .body import read_body
from .context import service
from .db import Database, jobs
from .db import deliveries as deliveries_table
from .db.deliveries import MAX_JOB_ID
from .errors import InvalidPayload
from .validation import STATUSES, parse_json

bp = Blueprint("api", __name__, url_prefix="/api/jobs")
LIST_PARAMETERS = frozenset({"status", "user_id", "organization_id", "since", "limit", "cursor"})
MAX_LIMIT, DEFAULT_LIMIT = 100, 20
MAX_FILTER = 128


@bp.before_request
def authenticate() -> None:
    """Bearer tokens from JOBS_API_TOKENS (constant time); open in development when none is set; closed
    (401) in production when none is set. The webhook's secrets are never tokens here."""
    if not service().readers.allows(request.headers.get("Authorization")):
        raise Challenge('Bearer realm="jobs"')


@bp.get("/<job_id>")
def show(job_id: str) -> Response:
    """One job; an ETag on every answer, and 304 for a client that already has this version."""
    return conditional(jsonify(find_job(_db(), job_id)))


@bp.get("")
def list_jobs() -> Response:
    """Jobs newest first, filtered, in keyset pages: a page never repeats or skips a job while others arrive."""
    unknown = sorted(set(request.args) - LIST_PARAMETERS)
    if unknown:
        raise bad_parameter(f"paramètre inconnu: {unknown[0][:64]}", "$." + unknown[0][:64])
    repeated = next((name for name in request.args if len(request.args.getlist(name)) > 1), None)
    if repeated:
        raise bad_parameter(f"paramètre répété: {repeated}", f"$.{repeated}")
    if request.args.get("status", "completed") not in STATUSES:
        raise bad_parameter(f"status doit valoir {', '.join(sorted(STATUSES))}", "$.status")
    names = ("status", "user_id", "organization_id")
    filters = {name: filter_value(name, request.args[name]) for name in names if name in request.args}
    if "since" in request.args:
        filters["since"] = _since(request.args["since"])
    limit = limit_value(request.args.get("limit"), DEFAULT_LIMIT)
    found, after = jobs.page(_db(), filters, limit=limit, after=read_cursor(request.args.get("cursor")))
    return conditional(jsonify(jobs=found, next_cursor=encode_cursor(after) if after else None))


@bp.put("/<job_id>")
def register(job_id: str) -> Response:
    """Register who asked for a job before (or after) its notifications: idempotent, one row either way."""
    hook = service()
    if not hook.validator.job_id_is_valid(job_id):
        raise bad_parameter("job_id invalide", "$.job_id")
    body = parse_json(read_body(hook.deadlines))
    hook.validator.validate_registration(body)
    owner = {name: body.get(name) for name in ("user_id", "organization_id", "prompt")}
    created = jobs.register(_db(), job_id, owner)
    return conditional(jsonify(jobs.find(_db(), job_id)), status=201 if created else 200)


@bp.get("/<job_id>/deliveries")
def deliveries(job_id: str) -> Response:
    """What the backend sent for this job and what the service answered, newest first (bodies when asked)."""
    include = request.args.get("include")
    if set(request.args) - {"include"} or include not in (None, "body"):
        raise bad_parameter("seul le paramètre include=body est accepté", "$.include")
    if len(job_id) > MAX_JOB_ID or "\x00" in job_id:  # any id a delivery carried, as it was stored
        raise bad_parameter(f"job_id doit avoir au plus {MAX_JOB_ID} caractères, sans NUL", "$.job_id")
    found = deliveries_table.for_job(_db(), job_id, include_body=include == "body")
    return conditional(jsonify(deliveries=found))


def find_job(db: Database, job_id: str) -> dict[str, Any]:
    """The job (the API's and the page's), or 404 "Job inconnu", also for an id no job can have."""
    job = jobs.find(db, job_id) if service().validator.job_id_is_valid(job_id) else None
    if job is None:
        raise NotFound("Job inconnu")
    return job


def _db() -> Database:
    db = service().db
    if db is None:
        raise NotFound("Pas de base de données: l'API des jobs demande DATABASE_URL")
    return db


def conditional(response: Response, status: int = 200) -> Response:
    """`response` with its ETag (unless it has one), or a bodiless 304 when If-None-Match has this ETag."""
    response.status_code = status
    response.add_etag(overwrite=False)
    response.make_conditional(request)
    return response


def bad_parameter(message: str, path: str) -> InvalidPayload:
    """400 "Paramètre invalide" naming the parameter (the API's and the page's)."""
    return InvalidPayload("Paramètre invalide", [{"path": path, "message": message}], outcome="invalid_parameter")


def filter_value(name: str, value: str) -> str:
    """A filter parameter's value, or 400 naming it (the API's and the page's)."""
    if not 0 < len(value) <= MAX_FILTER or "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise bad_parameter(f"{name} doit avoir de 1 à {MAX_FILTER} caractères, sans NUL", f"$.{name}")
    return value


def _since(value: str) -> str:
    moment = jobs.utc_text(value)  # as the database stores and sorts it
    if moment is None:
        raise bad_parameter("since doit être une date RFC 3339 (2025-10-21T16:45:00Z)", "$.since")
    return moment


def limit_value(value: str | None, default: int) -> int:
    """A page size of 1 to MAX_LIMIT, `default` when absent, or 400 (the API's and the page's)."""
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 3) or not 1 <= int(value) <= MAX_LIMIT:
        raise bad_parameter(f"limit doit être un entier de 1 à {MAX_LIMIT}", "$.limit")
    return int(value)


def encode_cursor(after: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(after)).encode()).decode().rstrip("=")


def read_cursor(value: str | None) -> tuple[str, int] | None:
    """The key after which the next page starts, as next_cursor gave it; 400 for anything else."""
    if value is None:
        return None
    try:
        created_at, row_id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        datetime.fromisoformat(created_at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise bad_parameter("cursor invalide: reprenez celui de next_cursor", "$.cursor") from None
    if not isinstance(row_id, int) or isinstance(row_id, bool) or len(value) > 200:
        raise bad_parameter("cursor invalide: reprenez celui de next_cursor", "$.cursor")
    return created_at, row_id
