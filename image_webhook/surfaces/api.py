"""The read API blueprint: /api/jobs for the application that asked for the images (Bearer tokens)."""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as BaseResponse

from ..domain.images import CopyState
from ..domain.notifications import MAX_JOB_ID
from ..domain.values import Status
from ..intake.auth import Challenge
from ..intake.body import read_body
from ..intake.parsing import parse_json
from ..service import service
from ..storage.database import Database, jobs
from ..storage.database import deliveries as deliveries_table
from .application import AnswerJson
from .reads import (
    BAD_CURSOR,
    MAX_LIMIT,
    bad_parameter,
    conditional,
    delivery_id,
    encode_cursor,
    filter_value,
    find_job,
    limit_value,
    read_cursor,
)
from .stored_images import serve

bp = Blueprint("api", __name__, url_prefix="/api/jobs")
LIST_PARAMETERS = frozenset({"status", "user_id", "organization_id", "since", "limit", "cursor"})
STATUSES = frozenset(Status)
DEFAULT_LIMIT = 20
DELIVERIES_PARAMETERS = frozenset({"include", "limit", "cursor"})
ANSWER_BYTES = 8 * 1024 * 1024  # a deliveries page's answer, its bodies included (one delivery alone may be more)
ENVELOPE = 64  # the answer's bytes around its deliveries: {"deliveries":[...],"next_cursor":"<18 digits>"}


@bp.before_request
def authenticate() -> None:
    """Bearer tokens from JOBS_API_TOKENS (constant time); open in development when none is set; closed
    (401) in production when none is set. The webhook's secrets are never tokens here."""
    if not service().readers.allows(request.headers.get("Authorization")):
        raise Challenge('Bearer realm="jobs"')


@bp.get("/<job_id>")
def show(job_id: str) -> Response:
    """One job; an ETag on every answer, and 304 for a client that already has this version."""
    return conditional(jsonify(_shown(find_job(_db(), job_id))))


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
    return conditional(
        jsonify(jobs=[_shown(job) for job in found], next_cursor=encode_cursor(after) if after else None)
    )


@bp.put("/<job_id>")
def register(job_id: str) -> Response:
    """Register who asked for a job before (or after) its notifications: idempotent, one row either way."""
    components = service()
    if not components.validator.job_id_is_valid(job_id):
        raise bad_parameter("job_id invalide", "$.job_id")
    body = parse_json(read_body(components.deadlines, components.settings.max_content_length))
    components.validator.validate_registration(body)
    owner = {name: body.get(name) for name in ("user_id", "organization_id", "prompt")}
    created = jobs.register(_db(), job_id, owner)
    return conditional(jsonify(_shown(jobs.find(_db(), job_id))), status=201 if created else 200)


@bp.get("/<job_id>/deliveries")
def deliveries(job_id: str) -> Response:
    """What the backend sent for this job and what the service answered, newest first (bodies when asked), in
    keyset pages of at most ANSWER_BYTES: a job of many large deliveries is read a page at a time."""
    unknown = sorted(set(request.args) - DELIVERIES_PARAMETERS)
    include = request.args.get("include")
    if unknown or include not in (None, "body"):
        raise bad_parameter("paramètres acceptés: include=body, limit, cursor", "$." + (unknown or ["include"])[0][:64])
    if len(job_id) > MAX_JOB_ID or "\x00" in job_id:  # any id a delivery carried, as it was stored
        raise bad_parameter(f"job_id doit avoir au plus {MAX_JOB_ID} caractères, sans NUL", "$.job_id")
    limit, before = limit_value(request.args.get("limit"), MAX_LIMIT), delivery_id("cursor", BAD_CURSOR)
    found, before = deliveries_table.page(
        _db(), job_id, limit=limit, before=before, include_body=include == "body", budget=ANSWER_BYTES
    )
    return conditional(_within_answer(found, before))


@bp.get("/<job_id>/images/<int(max=99):position>", defaults={"thumbnail": False})
@bp.get("/<job_id>/images/<int(max=99):position>/thumbnail", defaults={"thumbnail": True})
def image(job_id: str, position: int, thumbnail: bool) -> BaseResponse:
    """The stored copy of the job's image at `position` (from 0), or its thumbnail (WebP, 256 px at most)."""
    return serve(_db(), job_id, position, thumbnail=thumbnail)


def _shown(job: Any) -> Any:
    """The job with the service's own addresses of its stored images (`url`, `thumbnail_url`; null until stored)."""
    for position, copy in enumerate(job["copies"]):
        stored = copy["state"] == CopyState.STORED
        address = {"job_id": job["job_id"], "position": position}
        copy["url"] = url_for(".image", **address, thumbnail=False) if stored else None
        copy["thumbnail_url"] = url_for(".image", **address, thumbnail=True) if stored else None
    return job


def _db() -> Database:
    """The records the API reads: the stateless mode keeps none, and says so (404) here only."""
    db = service().db
    if db is None:
        raise NotFound("Pas de base de données: l'API des jobs demande DATABASE_URL")
    return db


def _within_answer(found: list[dict[str, Any]], before: int | None) -> Response:
    """The answer holding the first deliveries of `found` whose JSON fits in ANSWER_BYTES (one at least), and the
    next page's cursor: a body's JSON may outgrow its bytes (escapes), so the answer's own size decides. Each
    delivery is encoded once, by the app's encoder, and the answer is assembled from those pieces."""
    encode = cast(AnswerJson, current_app.json).encoder.encode
    pieces: list[str] = []
    size = ENVELOPE
    for delivery in found:
        piece = encode(delivery)
        size += len(piece.encode("utf-8", "surrogatepass")) + 1  # and a comma
        if pieces and size > ANSWER_BYTES:
            before = found[len(pieces) - 1]["id"]
            break
        pieces.append(piece)
    cursor = encode(str(before) if before else None)
    body = f'{{"deliveries":[{",".join(pieces)}],"next_cursor":{cursor}}}\n'
    return current_app.response_class(body, mimetype="application/json")


def _since(value: str) -> str:
    moment = jobs.utc_text(value)  # as the database stores and sorts it
    if moment is None:
        raise bad_parameter("since doit être une date RFC 3339 (2025-10-21T16:45:00Z)", "$.since")
    return moment
