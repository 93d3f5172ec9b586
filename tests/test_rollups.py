"""The monitoring's rollups: the numbers they give equal those the records give (tests/statistics_reference.py, the
scanning queries of before), the percentiles within their bound; the backfill of migration 0005; the copies'
counters; the ETag known before the numbers."""

import json
import math
import random
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from image_webhook.domain.images import CopyState
from image_webhook.service import EXTENSION
from image_webhook.storage.database import copies, jobs, migrate, open_database, rollups, statistics
from tests import statistics_reference as reference
from tests.payloads import FAILED, PROGRESS, URL, payload
from tests.test_pages import completed, rows

PERCENTILES = ("overall_median", "overall_p99")


def assert_same_numbers(found, expected):
    """The rollups' numbers are the records': the same counts, sums within float rounding, and each percentile
    at most RATIO times the records' one, never below it."""
    found, expected = json.loads(json.dumps(found)), json.loads(json.dumps(expected))
    for name in ("period", "since", "bucket_seconds", "buckets", "jobs", "duplicates"):
        assert found[name] == expected[name], name
    sizes, expected_sizes = found["image_sizes"], expected["image_sizes"]
    assert sizes == expected_sizes
    assert found["processing_ms"]["jobs"] == expected["processing_ms"]["jobs"]
    pairs = [(found["processing_ms"][name], expected["processing_ms"][name]) for name in PERCENTILES]
    for name in ("median", "p99"):
        pairs += list(zip(found["processing_ms"][name], expected["processing_ms"][name], strict=True))
    for value, exact in pairs:
        assert (value is None) == (exact is None)
        if exact is not None:
            assert exact <= value <= exact * rollups.RATIO + 1e-9, (value, exact)
    models = {model["model"]: model for model in found["generation_seconds"]}
    expected_models = {model["model"]: model for model in expected["generation_seconds"]}
    assert models.keys() == expected_models.keys()
    for name, model in models.items():
        assert model == pytest.approx(expected_models[name]), name


def copy_counts(db):
    counts = {state.value: 0 for state in CopyState}
    counts.update(
        {row["state"]: row["n"] for row in rows(db, "SELECT state, COUNT(*) AS n FROM image_copies GROUP BY state")}
    )
    return counts


def without_sizes(job_id, **changes):
    body = completed(job_id, **changes)
    del body["data"]["metadata"]["generation_time_seconds"]
    body["data"]["metadata"].pop("model_name")
    return body


@pytest.mark.database
def test_the_rollups_give_the_numbers_the_records_give(app, client):
    """Jobs through the real webhook (completed, failed, failed then completed, progress only, registered only,
    duplicates, replays): every period's numbers equal the scanning queries', the percentiles within 5 %."""
    db = app.extensions[EXTENSION].db
    generator = random.Random(22)
    for number in range(40):
        sizes = [generator.choice((None, 50_000, 700_000, 3_000_000, 20_000_000)) for _ in range(number % 3 + 1)]
        model = f"model-{number % 4}" if number % 5 else "modèle «é»"
        body = completed(f"job-{number}", seconds=round(generator.uniform(0.5, 60), 3), sizes=sizes, model=model)
        assert client.post(URL, json=body).status_code == 200
    assert client.post(URL, json=without_sizes("job-bare")).status_code == 200
    for job_id in ("job-f1", "job-f2", "job-f3"):
        assert client.post(URL, json=payload(FAILED, job_id)).status_code == 200
    assert client.post(URL, json=completed("job-f2", sizes=(123,))).status_code == 200  # a retry that succeeded
    assert client.post(URL, json=payload(PROGRESS, "job-running")).status_code == 200
    assert client.put("/api/jobs/job-registered", json={"prompt": "Un chat"}).status_code == 201
    for job_id in ("job-1", "job-1", "job-f2"):  # duplicates, written without waiting
        assert client.post(URL, json=completed(job_id)).status_code == 200
    assert client.post(URL, json=payload(FAILED, "job-f2")).status_code == 200  # a failed after a completed
    db.write(lambda connection: None)  # the group commit after the unawaited duplicates
    duplicates = rows(db, "SELECT COUNT(*) AS n FROM deliveries WHERE outcome = 'duplicate'")[0]["n"]
    assert duplicates == 4

    now = datetime.now(UTC)
    for period in statistics.PERIODS:
        found = statistics.summary(db, period, now=now)
        assert_same_numbers(found, reference.summary(db, period, now=now))
        assert found["jobs"]["total_completed"] == 42 and found["jobs"]["total_failed"] == 2
        assert found["duplicates"]["total"] == 4
    assert statistics.summary(db, "hour")["processing_ms"]["jobs"] == 44
    assert copies.summary(db)["counts"] == copy_counts(db) and copy_counts(db)["queued"] > 80


def seed_records(db, now, generator):
    """Jobs, deliveries and copies written as the service of revision 0004 would have, spread over 8 days."""
    statements = {
        "job": """INSERT INTO jobs (job_id, status, created_at, updated_at, images, metadata, processing_time_ms,
deliveries, duplicates) VALUES (:job_id, :status, :created_at, :created_at, :images, :metadata, :ms, 1, 0)""",
        "delivery": """INSERT INTO deliveries (job_id, status, received_at, outcome, reason, response_status)
VALUES (:job_id, 'completed', :received_at, :outcome, :reason, 200)""",
        "copy": """INSERT INTO image_copies (job_id, position, url, state, attempts, due_at, created_at, updated_at)
VALUES (:job_id, 0, 'http://127.0.0.1/a.png', :state, 0, :at, :at, :at)""",
    }
    values = []
    for number in range(300):
        created = now - timedelta(seconds=generator.uniform(0, 8 * 86400))
        at = created.isoformat(timespec="microseconds")
        status = generator.choice(("completed", "completed", "completed", "failed", "processing", "pending"))
        images = [{"url": "u", "size_bytes": generator.choice((None, 10, 150_000, 4_000_000, 50_000_000))}]
        images = [{k: v for k, v in image.items() if v is not None} for image in images]
        metadata = {"model_name": generator.choice(("a", "b", "c", 'ü"x')), "generation_time_seconds": number / 7}
        if number % 9 == 0:
            metadata = {}
        ms = None if status in ("processing", "pending") else generator.choice((0.0, generator.uniform(0.01, 5000)))
        done = status == "completed"
        values.append(
            (
                "job",
                {
                    "job_id": f"job-{number}",
                    "status": status,
                    "created_at": at,
                    "images": json.dumps(images) if done else None,
                    "metadata": json.dumps(metadata) if done else None,
                    "ms": ms,
                },
            )
        )
        outcome, reason = generator.choice((("duplicate", None), ("rejected", "duplicate"), ("processed", None)))
        received = (created + timedelta(seconds=1)).isoformat(timespec="microseconds")
        values.append(
            ("delivery", {"job_id": f"job-{number}", "received_at": received, "outcome": outcome, "reason": reason})
        )
        if done:
            values.append(
                ("copy", {"job_id": f"job-{number}", "state": generator.choice(list(CopyState)).value, "at": at})
            )

    def op(connection):
        for name, row in values:
            connection.execute(db.sql(statements[name]), row)

    db.write(op)


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path):
    """An empty database migrated to revision 0004 only, the service's database before the rollups."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"old_{uuid.uuid4().hex}")
    migrate.upgrade(url, "0004")
    return url


def test_the_migration_backfills_the_rollups_from_the_records(old_database):
    """Records of 8 days written at revision 0004, then migration 0005: every period's numbers equal the scanning
    queries', the copies' counters the table's count by state; the purge keeps the newest."""
    now = datetime.now(UTC)
    db = open_database(old_database, timeout=5)
    try:
        seed_records(db, now, random.Random(5))
    finally:
        db.close()
    migrate.upgrade(old_database)
    db = open_database(old_database, timeout=5)
    try:
        for period in statistics.PERIODS:
            assert_same_numbers(statistics.summary(db, period, now=now), reference.summary(db, period, now=now))
        week = statistics.summary(db, "week", now=now)
        assert week["jobs"]["total_completed"] > 100 and week["duplicates"]["total"] > 50
        assert sum(week["image_sizes"]["images"]) + week["image_sizes"]["unknown_size"] > 100
        assert copies.summary(db)["counts"] == copy_counts(db)
        kept = rows(db, "SELECT COUNT(*) AS n FROM rollups WHERE width > 0")[0]["n"]
        assert rollups.purge(db) == 0  # nothing older than 8 days was backfilled
        assert rollups.purge(db, now=now.timestamp() + 2 * 86400) > 0  # two days later: the oldest go
        assert 0 < rows(db, "SELECT COUNT(*) AS n FROM rollups WHERE width > 0")[0]["n"] < kept
        assert_same_numbers(statistics.summary(db, "day", now=now), reference.summary(db, "day", now=now))
    finally:
        db.close()


@pytest.mark.database
def test_the_copies_counters_follow_every_change_of_state(app, client):
    """Queued, claimed, a lease lost and claimed again, stored, failed, queued again, retried, purged: the
    counters equal the table's count by state after each step."""
    db = app.extensions[EXTENSION].db
    assert client.post(URL, json=completed("job-1", sizes=(1, 2, 3, 4, 5))).status_code == 200
    assert copies.summary(db)["counts"] == copy_counts(db) == {**copy_counts(db), "queued": 5}
    lost = copies.claim(db, limit=1, lease=-1)  # its lease has already run out
    assert copies.summary(db)["counts"] == copy_counts(db)
    tasks = copies.claim(db, limit=5, lease=60)
    assert len(tasks) == 5 and lost[0].id in {task.id for task in tasks}
    assert copies.summary(db)["counts"] == copy_counts(db) == {**copy_counts(db), "copying": 5}
    file = copies.StoredFile("0" * 64, 10, "image/png", 1, 1, ())
    assert copies.stored(db, tasks[0], file)
    assert not copies.stored(db, lost[0], file)  # an old lease changes nothing, counted or not
    assert copies.ended(db, tasks[1], CopyState.FAILED, "perdu")
    assert copies.ended(db, tasks[2], CopyState.REFUSED, "interdit")
    assert copies.ended(db, tasks[3], CopyState.FAILED, "encore", retry_in=0)
    assert copies.summary(db)["counts"] == copy_counts(db)
    assert copies.retry(db, "job-1") == 2
    assert copies.summary(db)["counts"] == copy_counts(db) == {**copy_counts(db), "queued": 3}
    assert jobs.purge(db, (datetime.now(UTC) + timedelta(days=1)).isoformat()) == 1
    assert copies.summary(db)["counts"] == copy_counts(db) == {state.value: 0 for state in CopyState}


@pytest.mark.database
def test_the_monitoring_etag_is_known_before_the_numbers(app, client):
    """A 304 costs the one lookup of the ETag: it is answered even when the numbers could not be computed (a
    broken rollup row, written behind the service's back); a notification or another period changes it. Failed
    jobs only: a queued copy's age, in the ETag, changes every second."""
    db = app.extensions[EXTENSION].db
    if time.time() % 1800 > 1790:  # the day's first bucket, in the ETag, moves every half hour
        time.sleep(11)
    assert client.post(URL, json=payload(FAILED, "job-1")).status_code == 200
    first = client.get("/monitoring.json?period=day")
    tag = first.headers["ETag"]
    assert first.status_code == 200 and first.json["jobs"]["total_failed"] == 1
    again = client.get("/monitoring.json?period=day", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == tag
    assert client.get("/monitoring.json?period=week", headers={"If-None-Match": tag}).status_code == 200

    bucket = int(time.time() // 1800 * 1800)
    broken = "INSERT INTO rollups (metric, width, bucket, label, n, total) VALUES ('image_size', 1800, :b, 'x', 1, 0)"
    db.write(lambda connection: connection.execute(db.sql(broken), {"b": bucket}))
    assert client.get("/monitoring.json?period=day", headers={"If-None-Match": tag}).status_code == 304
    assert client.get("/monitoring.json?period=day").status_code == 500  # the numbers were not read for the 304
    db.write(lambda connection: connection.execute("DELETE FROM rollups WHERE label = 'x'"))

    assert client.post(URL, json=payload(FAILED, "job-2")).status_code == 200
    changed = client.get("/monitoring.json?period=day", headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert changed.json["jobs"]["total_failed"] == 2


@pytest.mark.parametrize("seed", range(20))
def test_a_histogram_percentile_is_within_its_bound(seed):
    """The nearest-rank percentile of a histogram of 5 %-wide bins: never below the exact one, at most 5 % above."""
    generator = random.Random(seed)
    values = [generator.lognormvariate(3, 2) for _ in range(generator.randint(1, 500))] + [0.0] * (seed % 3)
    histogram = {}
    for value in values:
        found = histogram.setdefault(rollups.time_bin(value), [0, None])
        found[0] += 1
        found[1] = max(found[1] or value, value)
    ordered = sorted(values)
    for fraction in (0.01, 0.5, 0.9, 0.99, 1.0):
        exact = reference.percentile(ordered, fraction)
        found = statistics.histogram_percentile(histogram, fraction)
        assert exact <= found <= exact * rollups.RATIO and (found in values)
    assert statistics.histogram_percentile({}, 0.5) is None
    assert math.isclose(rollups.RATIO, 1.05)


def test_the_sqlite_of_this_machine_has_the_functions_the_backfill_uses():
    """The backfill's bins need ln() and floor() (SQLite ≥ 3.35 with its math functions)."""
    assert sqlite3.connect(":memory:").execute("SELECT floor(ln(8) / ln(2))").fetchone()[0] == 3
