"""The monitoring numbers as they were computed before the rollups, by scanning the records: the reference the
rollups are compared with in test_rollups.py (never used by the service)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from image_webhook.storage.database import Database
from image_webhook.storage.database.statistics import SIZE_LIMITS, size_label  # the labels are the page's


@dataclass(frozen=True, slots=True)
class Period:
    seconds: int  # how far back
    bucket: int  # the width of one point of the time plots, in seconds


PERIODS = {"hour": Period(3600, 60), "day": Period(86400, 1800), "week": Period(7 * 86400, 4 * 3600)}
SAMPLE = 10_000  # processing-time percentiles over at most this many of the period's most recent jobs
MAX_MODELS = 20  # the models with the most completed jobs

# What the two databases say differently: a time's bucket number, a field of a JSON column, a job's images as rows.
DIALECTS = {
    "sqlite": {
        "bucket": "CAST((julianday({time}) - julianday(:since)) * 86400 / :width AS INTEGER)",
        "text": "json_extract({json}, '$.{field}')",
        "number": "json_extract({json}, '$.{field}')",
        "each_image": "json_each(jobs.images) AS image",
    },
    "postgresql": {
        "bucket": "CAST(floor(extract(epoch FROM {time} - CAST(:since AS timestamptz)) / :width) AS integer)",
        "text": "{json} ->> '{field}'",
        "number": "CAST({json} ->> '{field}' AS double precision)",
        "each_image": "jsonb_array_elements(jobs.images) AS image(value)",
    },
}

# the jobs that started in the period, by the service's clock (created_at is indexed); deliveries by received_at.
# "Job déjà traité" answers a duplicate job and a replayed signed message, both kept as duplicate; a replay that
# its worker's memory caught was kept as rejected, reason duplicate, before 2026-11-25 (retention purges those).
PROCESSING = """SELECT {job_bucket} AS bucket, processing_time_ms FROM jobs
WHERE created_at >= :since AND processing_time_ms IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT :sample"""
OUTCOMES = """SELECT {job_bucket} AS bucket, status, COUNT(*) AS jobs FROM jobs
WHERE created_at >= :since AND status IN ('completed', 'failed') GROUP BY bucket, status"""
DUPLICATES = """SELECT {delivery_bucket} AS bucket, COUNT(*) AS deliveries FROM deliveries
WHERE received_at >= :since AND (outcome = 'duplicate' OR reason = 'duplicate') GROUP BY bucket"""
IMAGE_SIZES = """SELECT {size_bin} AS bin, COUNT(*) AS images, SUM(size) AS bytes
FROM (SELECT {size} AS size FROM jobs, {each_image} WHERE jobs.created_at >= :since AND jobs.status = 'completed')
AS sizes GROUP BY bin"""
MODELS = """SELECT {model} AS model, COUNT(*) AS completed, COUNT({generation}) AS timed,
SUM({generation}) AS seconds, MAX({generation}) AS slowest FROM jobs
WHERE created_at >= :since AND status = 'completed' GROUP BY model ORDER BY completed DESC LIMIT :models"""


@cache
def _queries(dialect: str) -> dict[str, str]:
    """The five queries in the words of `dialect` (still with :name parameters)."""
    words = DIALECTS[dialect]
    bins = " ".join(f"WHEN size < {limit} THEN {number}" for number, limit in enumerate(SIZE_LIMITS))
    fragments = {
        "job_bucket": words["bucket"].format(time="created_at"),
        "delivery_bucket": words["bucket"].format(time="received_at"),
        "model": words["text"].format(json="metadata", field="model_name"),
        "generation": words["number"].format(json="metadata", field="generation_time_seconds"),
        "size": words["number"].format(json="image.value", field="size_bytes"),
        "each_image": words["each_image"],
        "size_bin": f"CASE WHEN size IS NULL THEN -1 {bins} ELSE {len(SIZE_LIMITS)} END",
    }
    queries = {"processing": PROCESSING, "outcomes": OUTCOMES, "duplicates": DUPLICATES}
    queries |= {"image_sizes": IMAGE_SIZES, "models": MODELS}
    return {name: text.format(**fragments) for name, text in queries.items()}


def summary(db: Database, period_name: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The numbers the page plots for the period ending now, in buckets aligned on their width."""
    period = PERIODS[period_name]
    count = period.seconds // period.bucket
    moment = (now or datetime.now(UTC)).timestamp()
    start = (math.floor(moment / period.bucket) + 1) * period.bucket - period.seconds  # the last bucket holds now
    since = datetime.fromtimestamp(start, UTC).isoformat(timespec="microseconds")
    values = {"since": since, "width": period.bucket, "sample": SAMPLE, "models": MAX_MODELS}
    queries = {name: db.sql(text) for name, text in _queries(db.dialect).items()}
    rows = db.read(lambda connection: {name: connection.execute(q, values).fetchall() for name, q in queries.items()})

    def series() -> list[Any]:
        return [0] * count

    def slot(bucket: Any) -> int:  # a row written after `now` was read goes to the last bucket
        return min(max(int(bucket), 0), count - 1)

    times: list[list[float]] = [[] for _ in range(count)]
    for row in rows["processing"]:
        times[slot(row["bucket"])].append(float(row["processing_time_ms"]))
    outcomes = {"completed": series(), "failed": series()}
    for row in rows["outcomes"]:
        outcomes[row["status"]][slot(row["bucket"])] += row["jobs"]
    duplicates = series()
    for row in rows["duplicates"]:
        duplicates[slot(row["bucket"])] += row["deliveries"]
    sized = {int(row["bin"]): row for row in rows["image_sizes"]}
    every_time = sorted(value for bucket in times for value in bucket)
    return {
        "period": period_name,
        "since": since,
        "bucket_seconds": period.bucket,
        "buckets": [datetime.fromtimestamp(start + i * period.bucket, UTC).isoformat() for i in range(count)],
        "processing_ms": {
            "median": [percentile(sorted(bucket), 0.5) for bucket in times],
            "p99": [percentile(sorted(bucket), 0.99) for bucket in times],
            "overall_median": percentile(every_time, 0.5),
            "overall_p99": percentile(every_time, 0.99),
            "jobs": len(every_time),
            "sampled": len(every_time) == SAMPLE,  # more jobs in the period than the percentiles read
        },
        "jobs": {**outcomes, "total_completed": sum(outcomes["completed"]), "total_failed": sum(outcomes["failed"])},
        "duplicates": {"deliveries": duplicates, "total": sum(duplicates)},
        "image_sizes": {
            "bins": [size_label(number) for number in range(len(SIZE_LIMITS) + 1)],
            "images": [sized[number]["images"] if number in sized else 0 for number in range(len(SIZE_LIMITS) + 1)],
            "unknown_size": sized[-1]["images"] if -1 in sized else 0,
            "images_total": sum(row["images"] for row in sized.values()),
            "bytes_total": int(sum(row["bytes"] or 0 for row in sized.values())),
        },
        "generation_seconds": [_model(row) for row in rows["models"]],
    }


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values (None without any): always a value that was measured."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _model(row: Any) -> dict[str, Any]:
    seconds = float(row["seconds"]) if row["seconds"] is not None else 0.0
    return {
        "model": row["model"] if isinstance(row["model"], str) else None,
        "completed": row["completed"],
        "timed": row["timed"],
        "seconds": seconds,
        "average": seconds / row["timed"] if row["timed"] else None,
        "max": float(row["slowest"]) if row["slowest"] is not None else None,
    }
