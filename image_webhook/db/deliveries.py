"""The `deliveries` table: every authenticated delivery as it arrived, and what the service answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import Database, stored_time, utc_now

MAX_JOB_ID = 256  # a refused delivery's job_id is stored as received, cut to this length
MAX_STATUS = 32
COLUMNS = (
    "id",
    "job_id",
    "status",
    "received_at",
    "message_id",
    "client_address",
    "outcome",
    "reason",
    "response_status",
    "response_body",
)


@dataclass(slots=True)
class Delivery:
    """What one authenticated request brought; `outcome` and the answer are added when it is recorded."""

    raw: bytes | None
    client_address: str | None
    message_id: str | None = None
    job_id: str | None = None
    status: str | None = None
    received_at: str = field(default_factory=utc_now)
    reason: str | None = None
    response_body: str | None = None

    def describe(self, payload: Any) -> None:
        """Take the job id and status from a parsed body, valid or not, as text within bounds."""
        if isinstance(payload, dict):
            job_id, status = payload.get("job_id"), payload.get("status")
            self.job_id = job_id[:MAX_JOB_ID] if isinstance(job_id, str) else None
            self.status = status[:MAX_STATUS] if isinstance(status, str) else None


def insert_delivery(db: Database, connection: Any, delivery: Delivery, outcome: str, response_status: int) -> None:
    connection.execute(
        db.sql(INSERT),
        {
            "job_id": delivery.job_id,
            "status": delivery.status,
            "received_at": delivery.received_at,
            "raw_body": delivery.raw,
            "message_id": delivery.message_id,
            "client_address": delivery.client_address,
            "outcome": outcome,
            "reason": delivery.reason,
            "response_status": response_status,
            "response_body": delivery.response_body,
        },
    )


def record_later(db: Database, delivery: Delivery, outcome: str, response_status: int) -> None:
    """A delivery that changed no job (refused, or unavailable), written in the next group commit."""
    db.write_later(lambda connection: insert_delivery(db, connection, delivery, outcome, response_status))


def for_job(db: Database, job_id: str, *, include_body: bool = False, limit: int = 100) -> list[dict[str, Any]]:
    """The deliveries of a job, newest first; the raw bodies only when asked."""
    sql = db.sql(FOR_JOB.format(columns=", ".join(COLUMNS + (("raw_body",) if include_body else ()))))
    rows = db.read(lambda connection: connection.execute(sql, {"job_id": job_id, "limit": limit}).fetchall())
    return [_serialize(row, include_body) for row in rows]


def purge(db: Database, cutoff: str, batch: int = 500) -> int:
    """Delete up to `batch` deliveries received before `cutoff`, in one short transaction; return how many."""
    return db.write(lambda connection: connection.execute(db.sql(PURGE), {"cutoff": cutoff, "batch": batch}).rowcount)


def _serialize(row: Any, include_body: bool) -> dict[str, Any]:
    delivery = {column: row[column] for column in COLUMNS}
    delivery["received_at"] = stored_time(delivery["received_at"])
    if include_body:
        raw = row["raw_body"]
        delivery["body"] = bytes(raw).decode("utf-8", "replace") if raw is not None else None
    return delivery


INSERT = """INSERT INTO deliveries (job_id, status, received_at, raw_body, message_id, client_address, outcome, reason,
response_status, response_body) VALUES (:job_id, :status, :received_at, :raw_body, :message_id, :client_address,
:outcome, :reason, :response_status, :response_body)"""
FOR_JOB = "SELECT {columns} FROM deliveries WHERE job_id = :job_id ORDER BY received_at DESC, id DESC LIMIT :limit"
PURGE = """DELETE FROM deliveries WHERE id IN
(SELECT id FROM deliveries WHERE received_at < :cutoff ORDER BY id LIMIT :batch)"""
