"""Retention: deliveries and jobs past their age purged in small batches, never one long write lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ...observability.logs import LOGGER
from . import Database, copies, deliveries, jobs, rollups

log = logging.getLogger(LOGGER)
BATCH = 500  # rows per transaction: each holds the write lock for a few milliseconds


def purge(
    db: Database,
    *,
    delivery_days: float,
    job_days: float,
    batch: int = BATCH,
    release: Callable[[str, str], object] | None = None,
) -> tuple[int, int]:
    """Delete the deliveries older than `delivery_days` and the jobs older than `job_days` with their copies;
    `release(sha256, content_type)` is called for each stored file no copy names any more; return the counts."""
    now = datetime.now(UTC)
    removed = []
    files: list[tuple[str, str]] = []
    purges = (
        lambda cutoff: deliveries.purge(db, cutoff, batch),
        lambda cutoff: jobs.purge(db, cutoff, batch, files=files),
    )
    for purge_older, days in zip(purges, (delivery_days, job_days), strict=True):
        cutoff = (now - timedelta(days=days)).isoformat(timespec="microseconds")
        total = 0
        while (count := purge_older(cutoff)) > 0:
            total += count
            if count < batch:
                break
        removed.append(total)
    for sha256, content_type in dict.fromkeys(files):
        # a file another job still uses stays; a copy about to store it names it first (copies.hashed)
        if release is not None and not copies.still_used(db, sha256):
            release(sha256, content_type)
    rollups.purge(db)  # the monitoring's buckets past the week it plots
    db.optimize()  # the query planner's statistics follow the table (SQLite has no autovacuum to do it)
    if any(removed):
        log.info(
            "ℹ️ [Image Webhook] Rétention: %d livraison(s) et %d job(s) supprimé(s)",
            *removed,
            extra={"event": "retention"},
        )
    return removed[0], removed[1]
