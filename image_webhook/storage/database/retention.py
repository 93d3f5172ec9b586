"""Retention: deliveries, progress bodies and jobs past their age, purged in small batches that never stall a
webhook, by one process of the service at a time (a lease)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

from ...observability.logs import LOGGER
from . import Database, copies, deliveries, jobs, rollups
from .base import Lease

log = logging.getLogger(LOGGER)
T = TypeVar("T")
# rows per write at most: the candidates are read by the time index outside any write, then deleted by id in a
# transaction of the group commit, which a webhook's write waits for: a few milliseconds (docs/storage.md)
BATCH = 100
PACE = 0.005  # seconds a batch should take: past it the next batch is halved, under half of it doubled back
SMALLEST = 10  # rows: the batches are never halved below
# the progress bodies are cleared from where the last pass stopped, minus this margin: a delivery is written a
# few seconds after its reception at most (DB_TIMEOUT), never minutes
BODIES_MARGIN = timedelta(minutes=5)


class Purged(NamedTuple):
    """What one retention pass removed."""

    deliveries: int
    jobs: int
    bodies: int = 0  # progress deliveries whose raw body was cleared


def purge(
    db: Database,
    *,
    delivery_days: float,
    job_days: float,
    body_days: float | None = None,
    batch: int = BATCH,
    release: Callable[[str, str], object] | None = None,
    bodies_since: str | None = None,
) -> Purged:
    """Delete the deliveries older than `delivery_days` and the jobs older than `job_days` with their copies, and
    clear the raw bodies of the progress deliveries older than `body_days` (None: kept with their delivery);
    `release(sha256, content_type)` is called for each stored file no copy names any more; return the counts."""
    return _pass(db, delivery_days, job_days, body_days, batch, release, bodies_since)[0]


def _pass(
    db: Database,
    delivery_days: float,
    job_days: float,
    body_days: float | None,
    batch: int,
    release: Callable[[str, str], object] | None,
    bodies_since: str | None,
) -> tuple[Purged, str | None]:
    """purge(), and where the next pass may start clearing bodies (every progress body before is cleared)."""
    now = datetime.now(UTC)

    def cutoff(days: float) -> str:
        return (now - timedelta(days=days)).isoformat(timespec="microseconds")

    files: list[tuple[str, str]] = []
    pacer = Pacer(batch, db)
    removed = _batches(lambda size: deliveries.purge(db, cutoff(delivery_days), size), pacer)
    cleared, since = 0, bodies_since
    if body_days is not None and body_days < delivery_days:
        since = max(bodies_since or "", cutoff(delivery_days))  # older deliveries are gone
        cleared, since = _clear_bodies(db, since, cutoff(body_days), body_days, pacer)
    purged = _batches(lambda size: jobs.purge(db, cutoff(job_days), size, files=files), pacer)
    for sha256, content_type in dict.fromkeys(files):
        # a file another job still uses stays; a copy about to store it names it first (copies.hashed)
        if release is not None and not copies.still_used(db, sha256):
            release(sha256, content_type)
    rollups.purge(db)  # the monitoring's buckets past the week it plots
    if removed or purged:
        log.info(
            "ℹ️ [Image Webhook] Rétention: %d livraison(s) et %d job(s) supprimé(s)",
            removed,
            purged,
            extra={"event": "retention"},
        )
    if cleared:
        log.info(
            "ℹ️ [Image Webhook] Rétention: corps de %d livraison(s) de progression effacé(s)",
            cleared,
            extra={"event": "retention_bodies"},
        )
    return Purged(removed, purged, cleared), since


class Pacer:
    """Batches that take about PACE seconds whatever the database's state (a large table's cold pages and
    checkpoints make a batch of 100 rows take 40 ms): each batch's size follows the time the last one took,
    and after each the pass pauses as long, so the webhook's writes queued meanwhile take the writers' turn
    between two batches and wait for one short batch at most (pt-archiver's and gh-ost's chunk time)."""

    def __init__(self, largest: int, db: Database | None = None) -> None:
        self.largest = self.size = largest
        self.db = db
        self._took = 0.0

    def timed(self, batch: Callable[[int], T]) -> T:
        """`batch(self.size)`, timed; the next size follows."""
        started = time.perf_counter()
        result = batch(self.size)
        self._took = time.perf_counter() - started
        if self._took > PACE:
            self.size = max(min(SMALLEST, self.largest), self.size // 2)
        elif self._took < PACE / 2:
            self.size = min(self.largest, self.size * 2)
        return result

    def pause(self) -> None:
        """As long as the last batch took: its pages copied from the WAL meanwhile, outside the writers' turn
        (Database.checkpoint), so the checkpoint a commit runs inside its turn has little left to do."""
        started = time.perf_counter()
        if self.db is not None:
            self.db.checkpoint()
        time.sleep(max(0.0, min(self._took, 20 * PACE) - (time.perf_counter() - started)))


def _batches(purge_batch: Callable[[int], int], pacer: Pacer) -> int:
    """Run `purge_batch(size)` until a batch is not full; the total removed."""
    total = 0
    while True:
        asked = pacer.size
        count = pacer.timed(purge_batch)
        total += count
        if count < asked:
            return total
        pacer.pause()


def _clear_bodies(db: Database, since: str, cutoff: str, days: float, pacer: Pacer) -> tuple[int, str]:
    """Clear the progress bodies received from `since` to `cutoff`, a batch at a time; return how many, and
    where the next pass starts (the margin before this cutoff)."""

    def batch(size: int) -> int:
        nonlocal since
        count, last = deliveries.clear_bodies(db, since, cutoff, size, days=days)
        since = last or since  # the rows before are cleared: the next batch starts there, an index range
        return count

    total = _batches(batch, pacer)
    margin = (datetime.fromisoformat(cutoff) - BODIES_MARGIN).isoformat(timespec="microseconds")
    return total, max(since, margin)


class Retention:
    """The retention pass of the maintenance thread: run only by the process holding the service's lease (one
    SQLite file, or one PostgreSQL database), the others skip it; then the planner's statistics refreshed."""

    def __init__(
        self,
        db: Database,
        *,
        delivery_days: float,
        job_days: float,
        body_days: float | None,
        release: Callable[[str, str], object] | None = None,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.lease: Lease = db.lease("retention")
        self.delivery_days, self.job_days, self.body_days = delivery_days, job_days, body_days
        self.release = release
        self.batch = batch
        self._bodies_since: str | None = None  # where this process's last pass stopped clearing bodies

    def run(self) -> Purged | None:
        """One pass; None when another process holds the lease (it runs the pass)."""
        if not self.lease.held():
            log.debug(
                "ℹ️ [Image Webhook] Rétention: passe laissée au processus qui détient le bail",
                extra={"event": "retention_skipped"},
            )
            self._bodies_since = None  # another process cleared bodies meanwhile: start over if it comes back
            return None
        days = (self.delivery_days, self.job_days, self.body_days)
        purged, self._bodies_since = _pass(self.db, *days, self.batch, self.release, self._bodies_since)
        self.db.optimize()  # the query planner's statistics follow the table (SQLite has no autovacuum to do it)
        return purged

    def close(self) -> None:
        """Give the lease up (the worker stops): another process takes the next pass."""
        self.lease.release()
