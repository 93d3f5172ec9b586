"""The monitoring numbers of the /jobs page over a period, summed from the rollups (rollups.py), not the records."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import Database, copies, rollups
from .tally import higher


@dataclass(frozen=True, slots=True)
class Period:
    seconds: int  # how far back
    bucket: int  # the width of one point of the time plots, in seconds


PERIODS = {"hour": Period(3600, 60), "day": Period(86400, 1800), "week": Period(7 * 86400, 4 * 3600)}
MAX_MODELS = 20  # the models with the most completed jobs
SIZE_LIMITS = rollups.SIZE_LIMITS  # upper bounds of the size bins
WIDTH = {"hour": 60, "day": 1800, "week": 1800}  # the rollups' buckets each period reads (a plot point holds 1, 1, 8)
METRICS = ("completed", "failed", "processing", "duplicates", "image_size", "model", "generation")

# a bounded read: the period's rollup rows (60 minutes, 48 or 336 half hours; a row per metric, bin or model),
# summed by point of the plot (the sizes and the models over the whole period)
READ = f"""SELECT metric, CASE WHEN metric IN ('image_size', 'model', 'generation') THEN 0
ELSE (bucket - :since) / :plot END AS point, label, SUM(n) AS n, SUM(total) AS total, MAX(peak) AS peak
FROM rollups WHERE metric IN ({", ".join(f"'{metric}'" for metric in METRICS)}) AND width = :width
AND bucket >= :since GROUP BY metric, point, label"""
# what the page's numbers depend on, in one lookup: the rollups' newest change and the oldest queued copy
VERSION = f"""SELECT (SELECT bucket {rollups.NEWEST_CHANGE}) AS minute, (SELECT n {rollups.NEWEST_CHANGE}) AS changes,
({copies.OLDEST}) AS oldest"""


def etag(db: Database, period_name: str, *, now: datetime | None = None) -> str:
    """The ETag of the period's numbers, known without computing them (a 304 costs this one lookup): the
    period's start, the rollups' version and the oldest queued copy's age, which the numbers show."""
    moment = now or datetime.now(UTC)
    row = db.read(lambda connection: connection.execute(VERSION).fetchone())
    age = copies.age(row["oldest"], moment)
    return f"{period_name}-{_start(PERIODS[period_name], moment)}-{row['minute'] or 0}-{row['changes'] or 0}-{age}"


def summary(db: Database, period_name: str, *, now: datetime | None = None) -> dict[str, Any]:
    """The numbers the page plots for the period ending now, in buckets aligned on their width, summed from the
    rollups: the job counts by their start (created_at), the duplicates by their arrival; the percentiles from
    histograms of 5 %-wide bins (docs/operations.md: at most 5 % above the value of the records)."""
    period = PERIODS[period_name]
    count = period.seconds // period.bucket
    start = _start(period, (now or datetime.now(UTC)))
    since = datetime.fromtimestamp(start, UTC).isoformat(timespec="microseconds")
    values = {"since": start, "width": WIDTH[period_name], "plot": period.bucket}
    rows = db.read(lambda connection: connection.execute(db.sql(READ), values).fetchall())

    def series() -> list[Any]:
        return [0] * count

    def slot(point: Any) -> int:  # a row written after `now` was read goes to the last bucket
        return min(max(int(point), 0), count - 1)

    times: list[dict[str, list[Any]]] = [{} for _ in range(count)]
    every_time: dict[str, list[Any]] = {}
    outcomes = {"completed": series(), "failed": series()}
    duplicates = series()
    sized: dict[int, list[Any]] = {}
    models: dict[str, list[Any]] = {}
    for row in rows:
        metric, n = row["metric"], int(row["n"])
        if metric == "processing":
            for histogram in (times[slot(row["point"])], every_time):
                _merge(histogram.setdefault(row["label"], [0, None]), n, row["peak"])
        elif metric in outcomes:
            outcomes[metric][slot(row["point"])] += n
        elif metric == "duplicates":
            duplicates[slot(row["point"])] += n
        elif metric == "image_size":
            found = sized.setdefault(int(row["label"]), [0, 0.0])
            found[0] += n
            found[1] += float(row["total"])
        else:  # model: completed jobs; generation: timed ones, their seconds, the slowest
            found = models.setdefault(row["label"], [0, 0, 0.0, None])
            at = 0 if metric == "model" else 1
            found[at] += n
            if metric == "generation":
                found[2] += float(row["total"])
                found[3] = max(found[3] or 0.0, float(row["peak"] or 0.0))
    top = sorted((item for item in models.items() if item[1][0] > 0), key=lambda item: (-item[1][0], item[0]))
    bins = range(len(SIZE_LIMITS) + 1)
    return {
        "period": period_name,
        "since": since,
        "bucket_seconds": period.bucket,
        "buckets": [datetime.fromtimestamp(start + i * period.bucket, UTC).isoformat() for i in range(count)],
        "processing_ms": {
            "median": [histogram_percentile(bucket, 0.5) for bucket in times],
            "p99": [histogram_percentile(bucket, 0.99) for bucket in times],
            "overall_median": histogram_percentile(every_time, 0.5),
            "overall_p99": histogram_percentile(every_time, 0.99),
            "jobs": sum(n for n, _ in every_time.values()),
            "sampled": False,  # every job of the period is in the histograms (no sample any more)
        },
        "jobs": {**outcomes, "total_completed": sum(outcomes["completed"]), "total_failed": sum(outcomes["failed"])},
        "duplicates": {"deliveries": duplicates, "total": sum(duplicates)},
        "image_sizes": {
            "bins": [size_label(number) for number in bins],
            "images": [sized[number][0] if number in sized else 0 for number in bins],
            "unknown_size": sized[-1][0] if -1 in sized else 0,
            "images_total": sum(found[0] for found in sized.values()),
            "bytes_total": int(sum(found[1] for found in sized.values())),
        },
        "generation_seconds": [_model(label, *found) for label, found in top[:MAX_MODELS]],
    }


def histogram_percentile(histogram: dict[str, list[Any]], fraction: float) -> float | None:
    """The nearest-rank percentile of a histogram ({bin: [count, peak]}, rollups.time_bin's bins): the peak
    of the bin holding that rank, a value that was measured, at most rollups.RATIO times the exact one, never
    below it (None without any)."""
    total = sum(n for n, _ in histogram.values() if n > 0)
    if total <= 0:
        return None
    rank, seen = max(1, math.ceil(fraction * total)), 0
    for label in sorted(histogram, key=lambda label: -math.inf if label == rollups.ZERO else int(label)):
        n, peak = histogram[label]
        seen += max(n, 0)
        if n > 0 and seen >= rank:
            return float(peak) if peak is not None and label != rollups.ZERO else 0.0
    return None


def _merge(found: list[Any], n: int, peak: Any) -> None:
    found[0] += n
    found[1] = higher(found[1], None if peak is None else float(peak))


def _start(period: Period, moment: datetime) -> int:
    """The period's first bucket (epoch seconds), aligned on its width: the last bucket holds `moment`."""
    return (math.floor(moment.timestamp() / period.bucket) + 1) * period.bucket - period.seconds


def size_label(number: int) -> str:
    """The label of a size bin: '< 100 ko', '100 ko – 500 ko', ..., '≥ 10 Mo'."""
    bounds = (0, *SIZE_LIMITS)
    if number == 0:
        return f"< {_bytes(SIZE_LIMITS[0])}"
    if number == len(SIZE_LIMITS):
        return f"≥ {_bytes(SIZE_LIMITS[-1])}"
    return f"{_bytes(bounds[number])} – {_bytes(bounds[number + 1])}"


def _bytes(value: int) -> str:
    return f"{value / 1_000_000:g} Mo" if value >= 1_000_000 else f"{value / 1000:g} ko"


def _model(label: str, completed: int, timed: int, seconds: float, slowest: float | None) -> dict[str, Any]:
    return {
        "model": json.loads(label),
        "completed": completed,
        "timed": timed,
        "seconds": seconds,
        "average": seconds / timed if timed else None,
        "max": slowest if timed else None,
    }
