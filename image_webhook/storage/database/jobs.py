"""The `jobs` table: one row per job_id, moved forward by its notifications, the claim of its terminal one."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...domain.notifications import Delivery, Notification
from ...domain.values import Outcome, Status
from . import Database, copies, deliveries, rollups, utc_now
from .job_reads import find, page, utc_text

# the jobs' reads live in job_reads and are named from here too: one module to import for "jobs"
__all__ = ["Decision", "count_duplicate", "find", "page", "purge", "record", "register", "utc_text"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the database decided for one notification, and what changed."""

    outcome: Outcome  # PROCESSED, DUPLICATE, INTERMEDIATE or STALE
    replaced_failed: bool = False  # a completed replaced a failed (the backend retried and succeeded)
    after_completed: bool = False  # a failed arrived after a completed: changes nothing
    completed: bool = False  # the job's record is completed now: the fast path may answer its duplicates
    replay: bool = False  # a signed message already handled (its webhook-id), whatever worker handled it
    current: Status | None = None  # STALE: the status its job is at (the log says whether the job ended)


def record(
    db: Database,
    notification: Notification,
    delivery: Delivery,
    *,
    answer: Callable[[Decision], dict[str, Any]],
    on_job: Callable[[dict[str, Any]], object],
) -> tuple[Decision, dict[str, Any]]:
    """Decide and record one valid notification with its delivery and the answer it gets, in one
    transaction (the next group commit); return them once committed."""
    job_id, status, payload = notification.job_id, notification.status, notification.payload

    def op(connection: Any) -> tuple[Decision, dict[str, Any]]:
        now = utc_now()
        row = _current(db, connection, job_id)
        if row is None and not _insert(db, connection, job_id, status, now):
            row = _current(db, connection, job_id)  # another host's transaction created it meanwhile (PostgreSQL)
        replayed = delivery.message_id is not None and _handled(db, connection, delivery.message_id)
        decision = Decision(Outcome.DUPLICATE, replay=True) if replayed else _decide(row, notification)
        if decision.outcome is Outcome.PROCESSED:
            on_job(payload)  # inside the transaction: an exception rolls the job back with it
        body = answer(decision)
        if decision.outcome is Outcome.PROCESSED:
            values = _terminal_values(notification, now, body.get("processing_time_ms"))
            connection.execute(db.sql(TERMINAL), values)
            _count(db, row, now, notification, values["processing_time_ms"])
            copies.enqueue(db, connection, job_id, notification.images, now)  # the outbox: with the job, or not at all
        elif decision.outcome is Outcome.INTERMEDIATE:
            values = {"progress": payload.get("progress"), "message": payload.get("message")}
            connection.execute(db.sql(PROGRESS), {"job_id": job_id, "status": status.value, "now": now, **values})
        duplicate = int(decision.outcome is Outcome.DUPLICATE)
        connection.execute(db.sql(COUNT), {"job_id": job_id, "duplicate": duplicate})
        answered = json.dumps(body, ensure_ascii=False)
        deliveries.insert(db, connection, delivery, outcome=decision.outcome.stored, status=200, answer=answered)
        return decision, body

    return db.write(op)


def count_duplicate(db: Database, delivery: Delivery, answer: str) -> None:
    """A duplicate the fast path answered: its delivery and the job's counters, written in the next group
    commit without waiting (the job's record is already on disk)."""

    def op(connection: Any) -> None:
        connection.execute(db.sql(COUNT), {"job_id": delivery.job_id, "duplicate": 1})
        deliveries.insert(db, connection, delivery, outcome=Outcome.DUPLICATE.stored, status=200, answer=answer)

    db.write_later(op)


def _count(db: Database, row: Any, now: str, notification: Notification, elapsed: float | None) -> None:
    """The rollups of a job that reached its terminal status, in the bucket of its creation (`now` for a job
    this transaction created); staged, written last in the transaction."""
    data = notification.payload.get("data") or {}
    rollups.job_changed(
        db.tally,
        created=rollups.epoch(row["created_at"] if row is not None else now),
        before=row,
        status=notification.status.value,
        elapsed=elapsed,
        images=data.get("images"),
        metadata=data.get("metadata"),
    )


def _current(db: Database, connection: Any, job_id: str) -> Any:
    return connection.execute(db.sql(CURRENT[db.dialect]), {"job_id": job_id}).fetchone()


def _handled(db: Database, connection: Any, message_id: str) -> bool:
    """Whether a signed message with this webhook-id was already handled (any worker, any host)."""
    return connection.execute(db.sql(HANDLED), {"message_id": message_id}).fetchone() is not None


def _insert(db: Database, connection: Any, job_id: str, status: Status, now: str) -> bool:
    values = {"job_id": job_id, "status": status.value, "now": now}
    return bool(connection.execute(db.sql(INSERT), values).rowcount)


def _decide(row: Any, notification: Notification) -> Decision:
    status = notification.status
    if row is None:
        if status.terminal:
            return Decision(Outcome.PROCESSED, completed=status is Status.COMPLETED)
        return Decision(Outcome.INTERMEDIATE)
    current = Status(row["status"])
    if status.terminal:
        if current is Status.FAILED and status is Status.COMPLETED:
            return Decision(Outcome.PROCESSED, replaced_failed=True, completed=True)
        if current.terminal:
            done = current is Status.COMPLETED
            return Decision(Outcome.DUPLICATE, after_completed=done and status is Status.FAILED, completed=done)
        return Decision(Outcome.PROCESSED, completed=status is Status.COMPLETED)
    if current.rank > status.rank:
        return Decision(Outcome.STALE, current=current)
    if current.rank == status.rank:
        progress, known = notification.payload.get("progress"), row["progress"]
        if progress is None or (known is not None and progress <= known):
            return Decision(Outcome.STALE, current=current)
    return Decision(Outcome.INTERMEDIATE)


def _terminal_values(notification: Notification, now: str, elapsed: float | None) -> dict[str, Any]:
    payload = notification.payload
    data = payload.get("data") or {}
    images = data.get("images")
    first = images[0].get("description") if images else None
    completed = notification.status is Status.COMPLETED
    return {
        "job_id": notification.job_id,
        "status": notification.status.value,
        "now": now,
        "completed": completed,
        "message": payload.get("message"),
        "prompt": first if isinstance(first, str) else None,
        "images": json.dumps(images, ensure_ascii=False) if completed else None,
        "metadata": json.dumps(data.get("metadata"), ensure_ascii=False) if completed else None,
        "error_message": None if completed else payload.get("error_message") or payload.get("message"),
        "completed_at": utc_text((data.get("generated_at") if completed else None) or payload.get("timestamp")) or now,
        "processing_time_ms": elapsed,
    }


HANDLED = """SELECT 1 FROM deliveries WHERE message_id = :message_id
AND outcome IN ('processed', 'duplicate', 'progress', 'stale') LIMIT 1"""
INSERT = """INSERT INTO jobs (job_id, status, created_at, updated_at, deliveries, duplicates)
VALUES (:job_id, :status, :now, :now, 0, 0) ON CONFLICT (job_id) DO NOTHING"""
# a registration's prompt wins over the first image's description (the read API's PUT)
_CURRENT = "SELECT status, progress, created_at, processing_time_ms FROM jobs WHERE job_id = :job_id"
# PostgreSQL locks the row for the decision; SQLite's BEGIN IMMEDIATE already holds the database's lock
CURRENT = {"postgresql": _CURRENT + " FOR UPDATE", "sqlite": _CURRENT}
TERMINAL = """UPDATE jobs SET status = :status, progress = CASE WHEN :completed THEN 100 ELSE progress END,
message = :message, prompt = COALESCE(prompt, :prompt), images = :images, metadata = :metadata,
error_message = :error_message, completed_at = :completed_at, processing_time_ms = :processing_time_ms,
updated_at = :now WHERE job_id = :job_id"""
PROGRESS = """UPDATE jobs SET status = :status, progress = COALESCE(:progress, progress),
message = COALESCE(:message, message), updated_at = :now WHERE job_id = :job_id"""
COUNT = """UPDATE jobs SET deliveries = deliveries + 1, duplicates = duplicates + :duplicate WHERE job_id = :job_id"""


def register(db: Database, job_id: str, owner: dict[str, str | None]) -> bool:
    """Record who asked for a job (user_id, organization_id, prompt) before or after its notifications; never
    changes its status, images or metadata; return whether the job is new (pending until notified)."""

    def op(connection: Any) -> bool:
        created = connection.execute(db.sql(INSERT_REGISTERED), {"job_id": job_id, "now": utc_now(), **owner}).rowcount
        if not created:
            connection.execute(db.sql(REGISTER), {"job_id": job_id, **owner})
        return bool(created)

    return db.write(op)


def purge(db: Database, cutoff: str, batch: int = 500, *, files: list[tuple[str, str]] | None = None) -> int:
    """Delete up to `batch` jobs created before `cutoff` with their copies, the oldest first; return how many;
    the stored files the deleted copies named are added to `files` (sha256, content type). They are read by
    the time index outside any write, then deleted by id in one short transaction."""
    values = {"cutoff": cutoff, "batch": batch}
    rows = db.read(lambda connection: connection.execute(db.sql(PURGED), values).fetchall())
    if not rows:
        return 0
    names = {f"j{number}": row["job_id"] for number, row in enumerate(rows)}
    copies_sql = db.sql(PURGE_COPIES.format(names=", ".join(f":{name}" for name in names)))
    jobs_sql, ids = deliveries.by_ids(db, PURGE, [row["id"] for row in rows])

    def op(connection: Any) -> int:
        named = connection.execute(copies_sql, names).fetchall()
        for row in named:
            copies.moved(db, **{row["state"]: -1})
        if files is not None:
            files.extend((row["sha256"], row["content_type"]) for row in named if row["sha256"])
        return int(connection.execute(jobs_sql, ids).rowcount)

    return db.write(op)


# an index range of jobs_created_at_id, ordered by it (ORDER BY id walked the whole table)
PURGED = "SELECT id, job_id FROM jobs WHERE created_at < :cutoff ORDER BY created_at LIMIT :batch"
PURGE_COPIES = "DELETE FROM image_copies WHERE job_id IN ({names}) RETURNING sha256, content_type, state"
PURGE = "DELETE FROM jobs WHERE id IN ({ids})"
INSERT_REGISTERED = """INSERT INTO jobs (job_id, status, user_id, organization_id, prompt, created_at, updated_at,
deliveries, duplicates) VALUES (:job_id, 'pending', :user_id, :organization_id, :prompt, :now, :now, 0, 0)
ON CONFLICT (job_id) DO NOTHING"""
# the registration's prompt wins over the first image's description; a missing field keeps what is known
REGISTER = """UPDATE jobs SET user_id = COALESCE(:user_id, user_id),
organization_id = COALESCE(:organization_id, organization_id), prompt = COALESCE(:prompt, prompt)
WHERE job_id = :job_id"""
