"""Rollups: the monitoring numbers counted as the records are written, in time buckets (the `rollups` table).

Each row is one metric in one bucket: its start (epoch seconds, aligned on its width), a label (a histogram bin, a
model, a copy state), a count, a total and a peak. A write stages its changes in the writer's Tally (tally.py),
written last in the same transaction; the statistics then read a bounded number of rows.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import Any

from . import Database
from .tally import WIDTHS, Tally

__all__ = ["WIDTHS", "Tally", "job_changed", "purge"]
RATIO = 1.05  # a histogram bin holds the values from RATIO**i to RATIO**(i + 1): 5 % wide
SIZE_LIMITS = (100_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000)  # upper bounds of the size bins
ZERO = "zero"  # the histogram bin of a time of 0 ms
KEPT_DAYS = 8  # the rollups outlive the week's plot by a day, then go (purge)

LOG_RATIO = math.log(RATIO)
# the version of the rollups: the newest change marker (one per minute in which a rollup changed) and its count
NEWEST_CHANGE = "FROM rollups WHERE metric = 'changes' AND width = 60 AND label = '' ORDER BY bucket DESC LIMIT 1"
PAST = "width > 0 AND bucket < :cutoff"  # a read of a table of 8 days of buckets at most, then a write if any
PURGE = f"DELETE FROM rollups WHERE {PAST}"
ANY_PAST = f"SELECT 1 AS found FROM rollups WHERE {PAST} LIMIT 1"


def epoch(value: Any) -> float:
    """A stored time (SQLite's ISO text, PostgreSQL's datetime) in epoch seconds."""
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()


def time_bin(milliseconds: float) -> str:
    """The histogram bin of a duration: floor(log(value) / log(RATIO)), or ZERO."""
    return str(math.floor(math.log(milliseconds) / LOG_RATIO)) if milliseconds > 0 else ZERO


def size_bin(size: Any) -> int:
    """The size bin of an image's size_bytes: 0 to len(SIZE_LIMITS), -1 when unknown."""
    if not isinstance(size, int | float) or isinstance(size, bool):
        return -1
    return next((number for number, limit in enumerate(SIZE_LIMITS) if size < limit), len(SIZE_LIMITS))


def model_label(model: Any) -> str:
    """A model's label: its name as JSON (null for a job without one)."""
    return json.dumps(model if isinstance(model, str) else None, ensure_ascii=False)


def job_changed(
    tally: Tally,
    *,
    created: float,
    before: Any,
    status: str,
    elapsed: float | None,
    images: Any = None,
    metadata: Any = None,
) -> None:
    """A job created at `created` (epoch seconds) reached `status` (completed or failed) after `elapsed` ms:
    `before` is its row before (status, processing_time_ms) when it had one; a completed replacing a failed
    takes the failed's counts back."""
    if before is not None and before["status"] == "failed":
        tally.count("failed", created, n=-1)
        if before["processing_time_ms"] is not None:
            tally.count("processing", created, time_bin(float(before["processing_time_ms"])), n=-1)
    tally.count(status, created)
    if elapsed is not None:
        tally.count("processing", created, time_bin(elapsed), total=elapsed, peak=elapsed)
    if status != "completed":
        return
    sizes: dict[int, list[float]] = {}
    for image in images or ():
        size = image.get("size_bytes") if isinstance(image, dict) else None
        number = size_bin(size)
        found = sizes.setdefault(number, [0, 0.0])
        found[0] += 1
        found[1] += float(size) if number >= 0 and size is not None else 0.0
    for number, (n, total) in sizes.items():
        tally.count("image_size", created, str(number), n=int(n), total=total)
    metadata = metadata if isinstance(metadata, dict) else {}
    label = model_label(metadata.get("model_name"))
    tally.count("model", created, label)
    seconds = metadata.get("generation_time_seconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        tally.count("generation", created, label, total=float(seconds), peak=float(seconds))


def purge(db: Database, *, now: float | None = None) -> int:
    """Delete the rollups older than KEPT_DAYS (no period reads them any more), in a write only when there are
    any; return how many."""
    values = {"cutoff": int((now or time.time()) - KEPT_DAYS * 86400)}
    if db.read(lambda connection: connection.execute(db.sql(ANY_PAST), values).fetchone()) is None:
        return 0  # nothing to delete: no write, no wait for the write lock
    return int(db.write(lambda connection: connection.execute(db.sql(PURGE), values).rowcount))
