"""The `deliveries` table: every authenticated delivery as it arrived, and what the service answered."""

from __future__ import annotations

from typing import Any

from ...domain.notifications import Delivery
from . import Database, stored_time

BODY_KEPT = 64 * 1024  # bytes of a delivery's body kept, except a processed one's (the job's record)
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


def insert(
    db: Database,
    connection: Any,
    delivery: Delivery,
    *,
    outcome: str,
    status: int,
    answer: str | None,
    reason: str | None = None,
) -> None:
    """Keep `delivery` with what was done with it (`outcome`, `reason`) and the answer it got. A body is kept
    whole when it was processed; any other (a duplicate, a progress, a refusal) is cut to BODY_KEPT bytes, its
    size said in `reason`: a sender looping padded bodies cannot grow the database 1 MiB at a time."""
    raw = delivery.raw
    if outcome != "processed" and raw is not None and len(raw) > BODY_KEPT:
        cut = f"corps de {len(raw)} octets, {BODY_KEPT} gardés"
        reason = f"{reason} ({cut})" if reason else cut
        raw = raw[:BODY_KEPT]
    if outcome == "duplicate":  # the monitoring's duplicates, in the delivery's transaction
        db.tally.count("duplicates", delivery.received)
    connection.execute(
        db.sql(INSERT),
        {
            "job_id": delivery.job_id,
            "status": delivery.status,
            "received_at": delivery.received_at,
            "raw_body": raw,
            "message_id": delivery.message_id,
            "client_address": delivery.client_address,
            "outcome": outcome,
            "reason": reason,
            "response_status": status,
            "response_body": answer,
        },
    )


def insert_later(db: Database, delivery: Delivery, **answered: Any) -> None:
    """A delivery that changed no job (a duplicate, a refusal), written in the next group commit unawaited."""
    db.write_later(lambda connection: insert(db, connection, delivery, **answered))


def for_job(db: Database, job_id: str, *, include_body: bool = False, limit: int = 100) -> list[dict[str, Any]]:
    """The deliveries of a job, newest first; the raw bodies only when asked."""
    sql = db.sql(FOR_JOB.format(columns=", ".join(COLUMNS + (("raw_body",) if include_body else ()))))
    rows = db.read(lambda connection: connection.execute(sql, {"job_id": job_id, "limit": limit}).fetchall())
    return [_serialize(row, include_body) for row in rows]


def page(
    db: Database,
    job_id: str,
    *,
    limit: int,
    before: int | None,
    include_body: bool = True,
    budget: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to `limit` deliveries of a job, newest first by id, those before the id `before` (the keyset of the job
    page and of the API); with their bodies when asked, only as many as `budget` bytes of bodies hold (one at
    least): a job of many large deliveries never sits whole in memory. And the id the next page starts before."""
    where = "job_id = :job_id" + (" AND id < :before" if before is not None else "")
    values: dict[str, Any] = {"job_id": job_id, "before": before, "limit": limit + 1}
    columns = ", ".join((*COLUMNS, "raw_body") if include_body else COLUMNS)
    if not (include_body and budget is not None):
        rows = _read(db, f"SELECT {columns} FROM deliveries WHERE {where} ORDER BY id DESC LIMIT :limit", values)
        found = [_serialize(row, include_body) for row in rows[:limit]]
        return found, found[-1]["id"] if len(rows) > limit else None
    sizes = _read(
        db, f"SELECT id, length(raw_body) AS size FROM deliveries WHERE {where} ORDER BY id DESC LIMIT :limit", values
    )
    fit = _fitting([row["size"] for row in sizes[:limit]], budget)
    if not fit:
        return [], None
    # the ids measured, not the newest now: a delivery written since is not loaded unmeasured
    measured = {**values, "top": sizes[0]["id"], "bottom": sizes[fit - 1]["id"]}
    sql = f"SELECT {columns} FROM deliveries WHERE {where} AND id BETWEEN :bottom AND :top ORDER BY id DESC"
    rows = _read(db, sql, measured)
    return [_serialize(row, True) for row in rows], sizes[fit - 1]["id"] if len(sizes) > fit else None


def _read(db: Database, sql: str, values: dict[str, Any]) -> list[Any]:
    return db.read(lambda connection: connection.execute(db.sql(sql), values).fetchall())


def _fitting(sizes: list[int | None], budget: int) -> int:
    """How many of the first `sizes` (bytes of bodies) fit in `budget` together; one at least, if any."""
    total = 0
    for count, size in enumerate(sizes):
        total += size or 0
        if total > budget:
            return max(count, 1)
    return len(sizes)


def purge(db: Database, cutoff: str, batch: int = 500) -> int:
    """Delete up to `batch` deliveries received before `cutoff`, the oldest first; return how many. They are
    read by the time index outside any write (nothing to delete: one index lookup, no write), then deleted by
    id in one short transaction."""
    values = {"cutoff": cutoff, "batch": batch}
    ids = [row["id"] for row in db.read(lambda connection: connection.execute(db.sql(PURGED), values).fetchall())]
    if not ids:
        return 0
    sql, values = by_ids(db, DELETE, ids)
    return int(db.write(lambda connection: connection.execute(sql, values).rowcount))


def clear_bodies(db: Database, since: str, cutoff: str, batch: int, *, days: float) -> tuple[int, str | None]:
    """Clear the raw bodies of up to `batch` progress deliveries received from `since` to before `cutoff`, the
    oldest first, keeping their rows (outcome, times, answer), the body's size said in `reason`; return how many,
    and when the last one cleared was received (None: none was left)."""
    values = {"since": since, "cutoff": cutoff, "batch": batch}
    rows = db.read(lambda connection: connection.execute(db.sql(BODIES), values).fetchall())
    if not rows:
        return 0, None
    sql, named = by_ids(db, CLEAR, [row["id"] for row in rows])
    named["cleared"] = f"effacé après {days:g} jour(s)"
    count = int(db.write(lambda connection: connection.execute(sql, named).rowcount))
    return count, stored_time(rows[-1]["received_at"])


def by_ids(db: Database, sql: str, ids: list[int]) -> tuple[str, dict[str, object]]:
    """`sql` with its `{ids}` the named parameters of `ids` (one statement for a batch)."""
    names = {f"i{number}": value for number, value in enumerate(ids)}
    return db.sql(sql.format(ids=", ".join(f":{name}" for name in names))), dict(names)


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
# retention: each an index range of deliveries_received_at, ordered by it (ORDER BY id walked the whole table)
PURGED = "SELECT id FROM deliveries WHERE received_at < :cutoff ORDER BY received_at LIMIT :batch"
DELETE = "DELETE FROM deliveries WHERE id IN ({ids})"
PROGRESS_OUTCOMES = ("progress", "stale")  # the intermediate notifications: their bodies say little once old
BODIES = f"""SELECT id, received_at FROM deliveries WHERE received_at >= :since AND received_at < :cutoff
AND outcome IN {PROGRESS_OUTCOMES!r} AND raw_body IS NOT NULL ORDER BY received_at LIMIT :batch"""
# the cut body's reason keeps its first words; the size is the body's as kept
CLEAR = """UPDATE deliveries SET reason = CASE WHEN reason IS NULL
THEN 'corps de ' || CAST(length(raw_body) AS TEXT) || ' octets ' || CAST(:cleared AS TEXT)
ELSE reason || ', corps ' || CAST(:cleared AS TEXT) END, raw_body = NULL
WHERE id IN ({ids}) AND raw_body IS NOT NULL"""
