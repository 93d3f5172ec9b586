"""Retention: deliveries and jobs past their age purged in small batches, never one long write lock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from ...observability.logs import LOGGER
from . import Database, deliveries, jobs

log = logging.getLogger(LOGGER)
BATCH = 500  # rows per transaction: each holds the write lock for a few milliseconds


def purge(db: Database, *, delivery_days: float, job_days: float, batch: int = BATCH) -> tuple[int, int]:
    """Delete the deliveries older than `delivery_days` and the jobs older than `job_days`; return the counts."""
    now = datetime.now(UTC)
    removed = []
    for table, days in ((deliveries, delivery_days), (jobs, job_days)):
        cutoff = (now - timedelta(days=days)).isoformat(timespec="microseconds")
        total = 0
        while (count := table.purge(db, cutoff, batch)) > 0:
            total += count
            if count < batch:
                break
        removed.append(total)
    db.optimize()  # the query planner's statistics follow the table (SQLite has no autovacuum to do it)
    if any(removed):
        log.info(
            "ℹ️ [Image Webhook] Rétention: %d livraison(s) et %d job(s) supprimé(s)",
            *removed,
            extra={"event": "retention"},
        )
    return removed[0], removed[1]
