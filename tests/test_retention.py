"""Retention: deliveries and jobs past their age are deleted in small batches, on demand and by the cleanup thread."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from image_webhook.service import EXTENSION
from image_webhook.storage.database import deliveries, jobs, retention

pytestmark = pytest.mark.database
OLD = "2020-01-01T00:00:00.000000+00:00"


def days_ago(days):
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")


def insert(db, prefix, count, *, created_at):
    """`count` jobs created at `created_at`, each with a delivery received then."""

    def op(connection):
        for i in range(count):
            values = {"job_id": f"{prefix}-{i}", "at": created_at}
            connection.execute(
                db.sql("""INSERT INTO jobs (job_id, status, created_at, updated_at, deliveries, duplicates)
                VALUES (:job_id, 'completed', :at, :at, 1, 0)"""),
                values,
            )
            connection.execute(
                db.sql("""INSERT INTO deliveries (job_id, status, received_at, outcome, response_status)
                VALUES (:job_id, 'completed', :at, 'processed', 200)"""),
                values,
            )

    db.write(op)


def job_ids(db, table):
    """The job ids left in `table`, sorted."""
    rows = db.read(lambda connection: connection.execute(f"SELECT job_id FROM {table}").fetchall())
    return sorted(row["job_id"] for row in rows)


@pytest.fixture
def db(make_app):
    return make_app().extensions[EXTENSION].db


def test_purge_deletes_every_old_row_in_batches_and_keeps_recent_ones(db):
    """30 old deliveries and jobs purged 7 at a time are all gone; the recent rows stay."""
    insert(db, "old", 30, created_at=OLD)
    insert(db, "new", 3, created_at=days_ago(0))
    assert retention.purge(db, delivery_days=7, job_days=90, batch=7) == (30, 30)
    assert job_ids(db, "jobs") == job_ids(db, "deliveries") == ["new-0", "new-1", "new-2"]
    assert retention.purge(db, delivery_days=7, job_days=90, batch=7) == (0, 0)


def test_one_batch_deletes_at_most_its_size(db):
    """Each purge transaction deletes at most `batch` rows, the oldest inserted first: no long write lock."""
    insert(db, "old", 30, created_at=OLD)
    cutoff = days_ago(7)
    assert deliveries.purge(db, cutoff, 7) == 7
    assert jobs.purge(db, cutoff, 7) == 7
    assert len(job_ids(db, "jobs")) == len(job_ids(db, "deliveries")) == 23
    assert "old-0" not in job_ids(db, "jobs")


def test_each_table_has_its_own_retention(db):
    """A delivery past DELIVERY_RETENTION_DAYS goes while its job, within JOB_RETENTION_DAYS, stays."""
    insert(db, "ten-days", 1, created_at=days_ago(10))
    insert(db, "hundred-days", 1, created_at=days_ago(100))
    assert retention.purge(db, delivery_days=7, job_days=90) == (2, 1)
    assert job_ids(db, "jobs") == ["ten-days-0"]
    assert job_ids(db, "deliveries") == []


def test_the_cleanup_thread_purges(make_app):
    """With a database the cleanup thread runs the purge: old rows disappear on their own, recent ones stay."""
    db = make_app(CLEANUP_INTERVAL=0.05, DELIVERY_RETENTION_DAYS=7, JOB_RETENTION_DAYS=90).extensions[EXTENSION].db
    insert(db, "new", 2, created_at=days_ago(0))
    insert(db, "old", 30, created_at=OLD)
    deadline = time.monotonic() + 10  # a purge runs every 50 ms
    while job_ids(db, "jobs") != ["new-0", "new-1"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job_ids(db, "jobs") == job_ids(db, "deliveries") == ["new-0", "new-1"]
