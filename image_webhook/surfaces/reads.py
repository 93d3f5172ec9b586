"""What the read API and the page share: their query parameters, keyset cursors, conditional answers, a job."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
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


def find_job(db: Database, job_id: str) -> dict[str, Any]:
    """The job (the API's and the page's), or 404 "Job inconnu", also for an id no job can have."""
    job = jobs.find(db, job_id) if service().validator.job_id_is_valid(job_id) else None
    if job is None:
        raise NotFound("Job inconnu")
    return job


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
        raise bad_parameter(BAD_CURSOR, "$.cursor") from None
    if not isinstance(row_id, int) or isinstance(row_id, bool) or len(value) > 200:
        raise bad_parameter(BAD_CURSOR, "$.cursor")
    return created_at, row_id
