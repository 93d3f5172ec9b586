"""What the read API and the page share: their query parameters, keyset cursors, conditional answers, a job."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, request
from werkzeug.exceptions import NotFound

from ..domain.values import Outcome
from ..intake.invalid import InvalidPayload
from ..service import service
from ..storage.database import Database, jobs

MAX_LIMIT = 100
MAX_FILTER = 128
BAD_CURSOR = "cursor invalide: reprenez celui de next_cursor"
# ASCII digits bounded so that both fit the databases: 17 digits of microseconds reach the year 5138, an id of
# 18 digits stays below 2**63; openapi.yaml's pattern for the cursor is this one
CURSOR = re.compile(r"([0-9]{1,17})\.([0-9]{1,18})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def find_job(db: Database, job_id: str) -> dict[str, Any]:
    """The job (the API's and the page's), or 404 "Job inconnu", also for an id no job can have."""
    job = jobs.find(db, job_id) if service().validator.job_id_is_valid(job_id) else None
    if job is None:
        raise NotFound("Job inconnu")
    return job


def not_modified(tag: str) -> Response | None:
    """A bodiless 304 when If-None-Match has `tag`, an ETag known before the answer's work (None otherwise)."""
    if not request.if_none_match.contains_weak(tag):
        return None
    response = Response(status=304)
    response.set_etag(tag)
    return response


def conditional(response: Response, status: int = 200) -> Response:
    """`response` with its ETag (unless it has one), or a bodiless 304 when If-None-Match has this ETag."""
    response.status_code = status
    response.add_etag(overwrite=False)
    response.make_conditional(request)
    return response


def bad_parameter(message: str, path: str) -> InvalidPayload:
    """400 "Paramètre invalide" naming the parameter."""
    return InvalidPayload("Paramètre invalide", [{"path": path, "message": message}], outcome=Outcome.INVALID_PARAMETER)


def filter_value(name: str, value: str) -> str:
    """A filter parameter's value, or 400 naming it."""
    if not 0 < len(value) <= MAX_FILTER or "\x00" in value:  # PostgreSQL text cannot hold NUL
        raise bad_parameter(f"{name} doit avoir de 1 à {MAX_FILTER} caractères, sans NUL", f"$.{name}")
    return value


def limit_value(value: str | None, default: int) -> int:
    """A page size of 1 to MAX_LIMIT, `default` when absent, or 400."""
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 3) or not 1 <= int(value) <= MAX_LIMIT:
        raise bad_parameter(f"limit doit être un entier de 1 à {MAX_LIMIT}", "$.limit")
    return int(value)


def delivery_id(name: str, message: str) -> int | None:
    """The delivery id a page of a job's deliveries starts before (a keyset, as the last page gave it), or 400."""
    value = request.args.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18) or int(value) < 1:
        raise bad_parameter(message, f"$.{name}")
    return int(value)


def encode_cursor(after: tuple[str, int]) -> str:
    """`<created_at in microseconds since 1970 UTC>.<id>`: digits the database's integers hold (openapi.yaml's
    pattern of the cursor: what every cursor matches, and every match is read)."""
    created_at, row_id = after
    return f"{(datetime.fromisoformat(created_at) - EPOCH) // MICROSECOND}.{row_id}"


def read_cursor(value: str | None) -> tuple[str, int] | None:
    """The key after which the next page starts, as next_cursor spells it; 400 for anything else."""
    if value is None:
        return None
    shape = CURSOR.fullmatch(value)
    if shape is None:
        raise bad_parameter(BAD_CURSOR, "$.cursor")
    micros, row_id = (int(part) for part in shape.groups())
    return (EPOCH + micros * MICROSECOND).isoformat(timespec="microseconds"), row_id
