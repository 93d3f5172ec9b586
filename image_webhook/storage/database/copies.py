"""The `image_copies` table: one copy task per image, queued in its job's transaction, claimed with a lease."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ...domain.images import CopyState, Mismatch
from . import Database, stored_time, utc_now

CLAIMED_FIELDS = ("format", "dimensions", "size_bytes")


@dataclass(frozen=True, slots=True)
class Task:
    """A claimed copy: what to fetch, what the notification claimed of it, and the lease that lets it finish."""

    id: int
    job_id: str
    position: int
    url: str
    claims: dict[str, Any]
    attempts: int  # this attempt included
    token: str


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size: int
    content_type: str
    width: int
    height: int
    mismatches: tuple[Mismatch, ...]


def enqueue(db: Database, connection: Any, job_id: str, images: Sequence[dict[str, Any]], now: str) -> None:
    """One queued task per image, in the transaction that records the completed job; never twice."""
    rows = [
        {
            "job_id": job_id,
            "position": position,
            "url": image["url"],
            "claims": json.dumps({key: image[key] for key in CLAIMED_FIELDS if key in image}, ensure_ascii=False),
            "now": now,
        }
        for position, image in enumerate(images)
    ]
    queued = 0
    for row in rows:  # psycopg's connection has no executemany; a job has at most 100 images
        queued += connection.execute(db.sql(ENQUEUE), row).rowcount
    moved(db, queued=queued)


def due(db: Database) -> bool:
    """Whether any task is due (a read: the copiers look often, and claim in a write only when there is one)."""
    values = {"now": utc_now()}
    return db.read(lambda connection: connection.execute(db.sql(ANY_DUE), values).fetchone()) is not None


def claim(db: Database, *, limit: int, lease: float) -> list[Task]:
    """Up to `limit` due tasks (queued, or copying with a lease run out), leased for `lease` seconds to a new
    token each; the attempt is counted now, so a copier that dies still uses one up."""
    now = datetime.now(UTC)
    values = {"now": now.isoformat(timespec="microseconds"), "limit": limit}
    values["until"] = (now + timedelta(seconds=lease)).isoformat(timespec="microseconds")

    def op(connection: Any) -> list[Task]:
        # the leases run out first (a copier died), then the oldest due: each an index range, never a sort
        ids = [row["id"] for row in connection.execute(db.sql(LOST[db.dialect]), values).fetchall()]
        if len(ids) < limit:
            more = {**values, "limit": limit - len(ids)}
            due = [row["id"] for row in connection.execute(db.sql(DUE[db.dialect]), more).fetchall()]
            moved(db, queued=-len(due), copying=len(due))  # a lost lease's task stays copying
            ids += due
        tasks = []
        for task_id in ids:
            token = str(uuid.uuid4())
            row = connection.execute(db.sql(CLAIM), {**values, "id": task_id, "token": token}).fetchone()
            claims = json.loads(row["claims"]) if row["claims"] else {}
            tasks.append(Task(task_id, row["job_id"], row["position"], row["url"], claims, row["attempts"], token))
        return tasks

    return db.write(op)


def renew(db: Database, tokens: Sequence[str], *, lease: float) -> None:
    """Extend the leases of the copies still running (the copier's heartbeat)."""
    until = (datetime.now(UTC) + timedelta(seconds=lease)).isoformat(timespec="microseconds")

    def op(connection: Any) -> None:
        for token in tokens:
            connection.execute(db.sql(RENEW), {"token": token, "until": until})

    db.write(op)


def hashed(db: Database, task: Task, sha256: str) -> bool:
    """Say which file the copy is about to store, before storing it: retention then keeps that file. False when
    the lease was lost (another copier has the task now)."""
    values = {"token": task.token, "digest": sha256, "now": utc_now()}
    return bool(db.write(lambda connection: connection.execute(db.sql(HASHED), values).rowcount))


def stored(db: Database, task: Task, file: StoredFile) -> bool:
    values = {
        "token": task.token,
        "now": utc_now(),
        "digest": file.sha256,
        "bytes": file.size,
        "content_type": file.content_type,
        "width": file.width,
        "height": file.height,
        "verified": not file.mismatches,
        "mismatches": json.dumps([m.as_dict() for m in file.mismatches], ensure_ascii=False),
    }
    return bool(db.write(lambda connection: _moved(db, connection, STORED, values, CopyState.STORED)))


def ended(db: Database, task: Task, state: CopyState, error: str, *, retry_in: float | None = None) -> bool:
    """A failed attempt: queued again after `retry_in` seconds, or `state` (failed, refused) for good."""
    now = datetime.now(UTC)
    due = now + timedelta(seconds=retry_in or 0)
    values = {"token": task.token, "now": now.isoformat(timespec="microseconds"), "error": error[:1000]}
    values.update(state=CopyState.QUEUED.value if retry_in is not None else state.value)
    values["due"] = due.isoformat(timespec="microseconds")
    return bool(db.write(lambda connection: _moved(db, connection, ENDED, values, CopyState(values["state"]))))


def retry(db: Database, job_id: str) -> int:
    """Queue a job's failed and refused copies again (the source is back, IMAGE_SOURCES was fixed), with every
    attempt given back; return how many."""
    values = {"job_id": job_id, "now": utc_now()}

    def op(connection: Any) -> int:
        again = 0
        for state in (CopyState.FAILED, CopyState.REFUSED):
            count = int(connection.execute(db.sql(RETRY), {**values, "state": state.value}).rowcount)
            moved(db, **{state.value: -count, CopyState.QUEUED.value: count})
            again += count
        return again

    return int(db.write(op))


def moved(db: Database, **changes: int) -> None:
    """Copies that entered (or, negative, left) states, counted in the rollups (staged in the transaction):
    the monitoring's copies by state are these counters, not a count of the table."""
    for state, n in changes.items():
        if n:
            db.tally.add("copies", 0, 0, state, n)


def _moved(db: Database, connection: Any, sql: str, values: dict[str, Any], state: CopyState) -> int:
    """A leased copy's end (`sql`, its lease token in `values`): copying no more, `state` now."""
    count = int(connection.execute(db.sql(sql), values).rowcount)
    moved(db, **{CopyState.COPYING.value: -count, state.value: count})
    return count


def for_jobs(db: Database, job_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The copies of jobs (one, or a page of the list) in the order of their images, as the read API shows them
    (without their URLs), in one query."""
    if not job_ids:
        return {}
    names = {f"j{number}": job_id for number, job_id in enumerate(job_ids)}
    sql = db.sql(FOR_JOBS.format(names=", ".join(f":{name}" for name in names)))
    rows = db.read(lambda connection: connection.execute(sql, names).fetchall())
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["job_id"], []).append(serialize(row))
    return found


def one(db: Database, job_id: str, position: int) -> dict[str, Any] | None:
    """One image's copy, as for_job() shows it, or None."""
    values = {"job_id": job_id, "position": position}
    row = db.read(lambda connection: connection.execute(db.sql(ONE), values).fetchone())
    return serialize(row) if row is not None else None


def serialize(row: Any) -> dict[str, Any]:
    return {
        "state": row["state"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "sha256": row["sha256"] if row["state"] == CopyState.STORED else None,
        "bytes": row["bytes"],
        "content_type": row["content_type"],
        "width": row["width"],
        "height": row["height"],
        "verified": None if row["verified"] is None else bool(row["verified"]),
        "mismatches": json.loads(row["mismatches"]) if row["mismatches"] else [],
        "updated_at": stored_time(row["updated_at"]),
    }


def summary(db: Database, *, now: datetime | None = None) -> dict[str, Any]:
    """Copies by state (their counters in the rollups, a few rows), and the age in seconds of the oldest task
    waiting to be copied (None when none waits)."""

    def op(connection: Any) -> dict[str, Any]:
        counts = {state.value: 0 for state in CopyState}
        counts.update({row["label"]: int(row["n"]) for row in connection.execute(db.sql(BY_STATE)).fetchall()})
        oldest = connection.execute(db.sql(OLDEST)).fetchone()["oldest"]
        return {"counts": counts, "oldest": oldest}

    found = db.read(op)
    return {**found, "oldest_queued_seconds": age(found.pop("oldest"), now or datetime.now(UTC))}


def age(oldest: Any, now: datetime) -> int | None:
    """How many seconds the oldest queued copy (its stored due time, or None) has waited at `now`."""
    return round((now - datetime.fromisoformat(stored_time(oldest))).total_seconds()) if oldest else None


def still_used(db: Database, sha256: str) -> bool:
    """Whether any copy (stored, or about to store it) names this file."""
    row = db.read(lambda connection: connection.execute(db.sql(USED), {"digest": sha256}).fetchone())
    return row is not None


ENQUEUE = """INSERT INTO image_copies (job_id, position, url, claims, state, attempts, due_at, created_at, updated_at)
VALUES (:job_id, :position, :url, :claims, 'queued', 0, :now, :now, :now) ON CONFLICT (job_id, position) DO NOTHING"""
# each an index range of image_copies_due (state, due_at): the queued ones come out in due order, unsorted
_DUE = "SELECT id FROM image_copies WHERE state = 'queued' AND due_at <= :now ORDER BY due_at LIMIT :limit"
_LOST = "SELECT id FROM image_copies WHERE state = 'copying' AND lease_until < :now LIMIT :limit"
# PostgreSQL: copiers on several hosts skip each other's rows; SQLite's BEGIN IMMEDIATE is already one at a time
DUE = {"postgresql": _DUE + " FOR UPDATE SKIP LOCKED", "sqlite": _DUE}
LOST = {"postgresql": _LOST + " FOR UPDATE SKIP LOCKED", "sqlite": _LOST}
ANY_DUE = f"SELECT 1 WHERE EXISTS ({_DUE.replace(':limit', '1')}) OR EXISTS ({_LOST.replace(':limit', '1')})"
CLAIM = """UPDATE image_copies SET state = 'copying', attempts = attempts + 1, lease_until = :until,
lease_token = :token, updated_at = :now WHERE id = :id RETURNING job_id, position, url, claims, attempts"""
RENEW = "UPDATE image_copies SET lease_until = :until WHERE lease_token = :token AND state = 'copying'"
HASHED = """UPDATE image_copies SET sha256 = :digest, updated_at = :now
WHERE lease_token = :token AND state = 'copying'"""
STORED = """UPDATE image_copies SET state = 'stored', sha256 = :digest, bytes = :bytes, content_type = :content_type,
width = :width, height = :height, verified = :verified, mismatches = :mismatches, last_error = NULL,
lease_until = NULL, lease_token = NULL, updated_at = :now WHERE lease_token = :token AND state = 'copying'"""
ENDED = """UPDATE image_copies SET state = :state, last_error = :error, due_at = :due, sha256 = NULL,
lease_until = NULL, lease_token = NULL, updated_at = :now WHERE lease_token = :token AND state = 'copying'"""
RETRY = """UPDATE image_copies SET state = 'queued', attempts = 0, due_at = :now, updated_at = :now
WHERE job_id = :job_id AND state = :state"""
_COPY_COLUMNS = "state, attempts, last_error, sha256, bytes, content_type, width, height, verified, mismatches"
FOR_JOBS = f"""SELECT job_id, {_COPY_COLUMNS}, updated_at FROM image_copies WHERE job_id IN ({{names}})
ORDER BY job_id, position"""
ONE = f"SELECT {_COPY_COLUMNS}, updated_at FROM image_copies WHERE job_id = :job_id AND position = :position"
# the copies' counters (rollups.py), kept by each change of state: a few rows, whatever the table holds
BY_STATE = "SELECT label, n FROM rollups WHERE metric = 'copies' AND width = 0 AND bucket = 0"
OLDEST = "SELECT MIN(due_at) AS oldest FROM image_copies WHERE state = 'queued'"
USED = "SELECT 1 FROM image_copies WHERE sha256 = :digest LIMIT 1"
