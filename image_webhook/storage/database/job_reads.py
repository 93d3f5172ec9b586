"""Reading jobs: one representation for the read API, the page and the CLI, and keyset pages newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from . import Database, copies, stored_time

COLUMNS = (
    "job_id",
    "status",
    "progress",
    "message",
    "prompt",
    "images",
    "metadata",
    "error_message",
    "user_id",
    "organization_id",
    "created_at",
    "updated_at",
    "completed_at",
    "processing_time_ms",
    "deliveries",
    "duplicates",
)


def utc_text(value: str | None) -> str | None:
    """An RFC 3339 date-time as the stored UTC text (None when Python cannot read it); a naive one is UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value[:-1] + "Z" if value.endswith("z") else value)  # RFC 3339 allows z
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError):  # not a date, or outside years 1-9999 in UTC
        return None


def page(
    db: Database, filters: dict[str, str], *, limit: int, after: tuple[str, int] | None
) -> tuple[list[dict[str, Any]], tuple[str, int] | None]:
    """Up to `limit` jobs newest first, matching `filters` (status, user_id, organization_id equal; since:
    created at or after), after the keyset `after` (created_at, id); and the key of the next page, if any."""
    clauses = [f"{name} = :{name}" for name in ("status", "user_id", "organization_id") if name in filters]
    clauses += ["created_at >= :since"] if "since" in filters else []
    # a row comparison: PostgreSQL bounds the index scan with it (an OR of two conditions it only filters by)
    clauses += ["(created_at, id) < (:created_at, :id)"] if after else []
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = db.sql(f"SELECT id, {', '.join(COLUMNS)} FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT :limit")
    values = {**filters, "limit": limit + 1, **(dict(zip(("created_at", "id"), after, strict=True)) if after else {})}
    rows = db.read(lambda connection: connection.execute(sql, values).fetchall())
    jobs = [serialize(row) for row in rows[:limit]]
    found = copies.for_jobs(db, [job["job_id"] for job in jobs if job["images"]])
    for job in jobs:
        job["copies"] = found.get(job["job_id"], [])
    last = rows[limit - 1] if len(rows) > limit else None
    return jobs, (stored_time(last["created_at"]), last["id"]) if last is not None else None


def find(db: Database, job_id: str) -> dict[str, Any] | None:
    """The job as the read API and the CLI show it, or None."""
    row = db.read(lambda connection: connection.execute(db.sql(FIND), {"job_id": job_id}).fetchone())
    if row is None:
        return None
    job = serialize(row)
    job["copies"] = copies.for_jobs(db, [job_id]).get(job_id, []) if job["images"] else []
    return job


def serialize(row: Any) -> dict[str, Any]:
    """One representation of a job (read API, CLI): JSON values decoded, times as ISO 8601 text (its `copies`
    are added by find() and page())."""
    job = {column: row[column] for column in COLUMNS}
    for column in ("images", "metadata"):
        if isinstance(job[column], str):
            job[column] = json.loads(job[column])
    for column in ("created_at", "updated_at", "completed_at"):
        job[column] = stored_time(job[column])
    return job


FIND = f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE job_id = :job_id"
