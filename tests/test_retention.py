"""Retention: deliveries and jobs past their age are deleted in small batches, on demand and by the cleanup thread."""

import json
import os
import signal
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from image_webhook.service import EXTENSION
from image_webhook.storage.database import deliveries, jobs, retention
from tests.payloads import COMPLETED, PROGRESS, URL, payload
from tests.servers import GunicornServer

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
    assert retention.purge(db, delivery_days=7, job_days=90, batch=7) == (30, 30, 0)
    assert job_ids(db, "jobs") == job_ids(db, "deliveries") == ["new-0", "new-1", "new-2"]
    assert retention.purge(db, delivery_days=7, job_days=90, batch=7) == (0, 0, 0)


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
    assert retention.purge(db, delivery_days=7, job_days=90) == (2, 1, 0)
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


# --- each batch an index range, deleted by id in a short write


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("sql", "index"),
    [
        (deliveries.PURGED, "deliveries_received_at"),
        (deliveries.BODIES, "deliveries_received_at"),
        (jobs.PURGED, "jobs_created_at_id"),
    ],
)
def test_the_candidates_are_read_by_the_time_index(db, sql, index):
    """Each batch's candidates are an index range of the time, even with the planner's statistics: ordered by
    id, SQLite walked the whole table, inside the write lock, on every pass with nothing to delete."""
    insert(db, "old", 50, created_at=OLD)
    insert(db, "new", 50, created_at=days_ago(0))
    db.optimize()
    values = {"cutoff": days_ago(7), "since": OLD, "batch": 10}
    plan = db.read(lambda connection: connection.execute(f"EXPLAIN QUERY PLAN {sql}", values).fetchall())
    details = " ".join(row["detail"] for row in plan)
    assert f"INDEX {index} (" in details and "SCAN" not in details, details


def writes(app):
    """The writes the database committed (the metrics' counter)."""
    return app.extensions[EXTENSION].metrics.writes._value.get()


def test_a_pass_with_nothing_to_delete_writes_nothing(make_app):
    """With nothing past its retention, a pass reads (one index lookup each) and never takes the write lock."""
    app = make_app()
    db = app.extensions[EXTENSION].db
    insert(db, "new", 5, created_at=days_ago(0))
    before = writes(app)
    assert retention.purge(db, delivery_days=7, job_days=90, body_days=1) == (0, 0, 0)
    assert writes(app) == before
    insert(db, "old", 3, created_at=OLD)
    assert retention.purge(db, delivery_days=7, job_days=90, body_days=1) == (3, 3, 0)
    assert writes(app) == before + 3  # the insert, and one write per table purged


def test_webhooks_are_answered_while_a_purge_deletes_many_rows(make_app):
    """While a pass deletes thousands of rows in small batches, every notification posted meanwhile is answered
    200 and recorded: the purge's writes share the group commits with them, a batch at a time."""
    app = make_app()
    db = app.extensions[EXTENSION].db
    for start in range(0, 3000, 500):
        insert(db, f"old-{start}", 500, created_at=OLD)
    client = app.test_client()
    purged = []
    worker = threading.Thread(
        target=lambda: purged.append(retention.purge(db, delivery_days=7, job_days=90, batch=20)), daemon=True
    )
    worker.start()
    posted = [f"during-{uuid.uuid4().hex[:8]}" for _ in range(40)]
    statuses = [client.post(URL, json=payload(COMPLETED, job_id)).status_code for job_id in posted]
    worker.join(60)
    assert statuses == [200] * len(posted)
    assert purged == [(3000, 3000, 0)]
    assert job_ids(db, "jobs") == sorted(posted)


# --- one pass per service: the lease


def test_one_process_holds_the_lease_and_the_others_skip_the_pass(make_app, logs):
    """Two apps on one database (two workers, or two hosts): the first pass takes the lease and runs, the
    other skips, said in the logs; once the holder stops, the other takes the lease and runs the pass."""
    first, second = (make_app(LOG_LEVEL="DEBUG").extensions[EXTENSION] for _ in range(2))
    insert(first.db, "old", 4, created_at=OLD)
    assert first.retention.run() == (4, 4, 0)
    insert(first.db, "older", 2, created_at=OLD)
    assert second.retention.run() is None
    skipped = [record for record in logs.records if getattr(record, "event", None) == "retention_skipped"]
    assert [record.getMessage() for record in skipped] == [
        "ℹ️ [Image Webhook] Rétention: passe laissée au processus qui détient le bail"
    ]
    assert job_ids(second.db, "jobs") == ["older-0", "older-1"]  # the skipped pass deleted nothing
    assert first.retention.run() == (2, 2, 0)  # the holder keeps its lease from pass to pass
    first.stop()
    insert(second.db, "oldest", 1, created_at=OLD)
    assert second.retention.run() == (1, 1, 0)


def lease_holders(lock):
    """The processes holding an exclusive flock on the file `lock`, by the kernel's own table (/proc/locks)."""
    if not lock.exists():
        return []
    inode = str(lock.stat().st_ino)
    found = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()  # "1: FLOCK  ADVISORY  WRITE 4711 fd:01:1234567 0 EOF"; waiters are "1: -> …"
        if fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5].rsplit(":", 1)[-1] == inode:
            found.append(int(fields[4]))
    return found


def children(parent):
    """The processes whose parent is `parent` (a gunicorn master's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:  # the process ended meanwhile
            continue
        if int(rest.rsplit(") ", 1)[1].split()[1]) == parent:
            found.append(int(pid))
    return found


def one_holder(server, lock, other_than=None, timeout=15):
    """The one live worker holding the lease (not `other_than`), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        holders = lease_holders(lock)
        if len(holders) == 1 and holders[0] != other_than and holders[0] in children(server.process.pid):
            return holders[0]
        time.sleep(0.05)
    raise AssertionError(f"no single worker held {lock} within {timeout}s: {lease_holders(lock)}")


@pytest.mark.sqlite_only
def test_one_gunicorn_worker_runs_the_passes_and_another_takes_over_when_it_is_killed(tmp_path):
    """Three real workers: exactly one holds the retention lease (the kernel's lock table says which; none is
    inherited from the master), the other two skip each pass, said at DEBUG; SIGKILL the holder and another
    worker takes the lease at its next pass."""
    env = {"APP_ENV": "development", "WEB_CONCURRENCY": "3", "CLEANUP_INTERVAL": "0.2", "LOG_LEVEL": "DEBUG"}
    with GunicornServer(tmp_path, env) as server:
        lock = Path(server.env["DATABASE_URL"].removeprefix("sqlite:///") + ".retention.lock")
        holder = one_holder(server, lock)
        skipped = "Rétention: passe laissée au processus qui détient le bail"
        server.wait_for(skipped, count=6)
        time.sleep(1)  # five passes of each worker more: still the same one holder
        assert lease_holders(lock) == [holder]
        os.kill(holder, signal.SIGKILL)
        assert one_holder(server, lock, other_than=holder) != holder
        assert server.post(payload(COMPLETED, job_id="after-the-kill")).status_code == 200


# --- the progress bodies' own retention


def age_deliveries(db, job_id, days):
    """Move a job's deliveries `days` back in time (as if received then)."""
    values = {"job_id": job_id, "at": days_ago(days)}
    db.write(lambda c: c.execute(db.sql("UPDATE deliveries SET received_at = :at WHERE job_id = :job_id"), values))


def bodies(client, job_id):
    """The job's deliveries as the read API gives them, with their bodies, oldest first."""
    found = client.get(f"/api/jobs/{job_id}/deliveries", query_string={"include": "body"}).get_json()["deliveries"]
    return found[::-1]


def test_progress_bodies_are_cleared_after_their_retention_and_the_rows_kept(make_app):
    """Past PROGRESS_BODY_RETENTION_DAYS a progress delivery (moving its job, or stale) loses its raw body and
    keeps its row (outcome, time, answer), its reason saying the body's size and why it is gone; the processed
    delivery keeps its body (the job's record), and so do the recent progress ones."""
    app = make_app(PROGRESS_BODY_RETENTION_DAYS=1)
    client, db = app.test_client(), app.extensions[EXTENSION].db
    old, recent = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("old", "recent"))
    for job_id in (old, recent):
        for notification in (payload(PROGRESS, job_id), payload(PROGRESS, job_id), payload(COMPLETED, job_id)):
            assert client.post(URL, json=notification).status_code == 200
    age_deliveries(db, old, 2)
    sizes = [len(delivery["body"].encode()) for delivery in bodies(client, old)]
    purged = app.extensions[EXTENSION].retention.run()
    assert purged == (0, 0, 2)
    progress, stale, processed = bodies(client, old)
    assert [progress["outcome"], stale["outcome"], processed["outcome"]] == ["progress", "stale", "processed"]
    assert progress["body"] is None and progress["reason"] == f"corps de {sizes[0]} octets effacé après 1 jour(s)"
    assert stale["body"] is None and stale["reason"] == f"corps de {sizes[1]} octets effacé après 1 jour(s)"
    assert progress["response_status"] == 200 and progress["response_body"]
    assert processed["body"] is not None and processed["reason"] is None
    assert all(delivery["body"] for delivery in bodies(client, recent))
    page = client.get(f"/jobs/{old}").get_data(as_text=True)
    assert f"corps de {sizes[0]} octets effacé après 1 jour(s)" in page
    assert app.extensions[EXTENSION].retention.run() == (0, 0, 0)  # the next pass starts where this one ended


def test_a_cut_progress_body_says_both_its_cut_and_its_clearing(make_app):
    """A progress body kept cut (over 64 KiB) keeps the words of its cut when it is cleared."""
    app = make_app(PROGRESS_BODY_RETENTION_DAYS=0.5)
    client, db = app.test_client(), app.extensions[EXTENSION].db
    job_id = f"padded-{uuid.uuid4().hex[:8]}"
    sent = json.dumps(payload(PROGRESS, job_id, padding="x" * 70_000)).encode()
    assert client.post(URL, data=sent, content_type="application/json").status_code == 200
    age_deliveries(db, job_id, 1)
    assert retention.purge(db, delivery_days=7, job_days=90, body_days=0.5) == (0, 0, 1)
    (delivery,) = bodies(client, job_id)
    assert delivery["body"] is None
    assert delivery["reason"] == f"corps de {len(sent)} octets, 65536 gardés, corps effacé après 0.5 jour(s)"


def test_bodies_are_cleared_in_batches_from_where_the_last_pass_stopped(make_app):
    """Many old progress bodies are cleared a batch at a time, all of them; a body older than the deliveries'
    retention goes with its delivery; bodies kept longer than the deliveries are never cleared."""
    app = make_app()
    client, db = app.test_client(), app.extensions[EXTENSION].db
    job_id = f"many-{uuid.uuid4().hex[:8]}"
    for progress in range(1, 26):
        assert client.post(URL, json=payload(PROGRESS, job_id, progress=progress)).status_code == 200
    age_deliveries(db, job_id, 2)
    assert retention.purge(db, delivery_days=3, job_days=90, body_days=3) == (0, 0, 0)  # moot: rows go first
    assert retention.purge(db, delivery_days=7, job_days=90, body_days=1, batch=4) == (0, 0, 25)
    assert [delivery["body"] for delivery in bodies(client, job_id)] == [None] * 25
    assert retention.purge(db, delivery_days=1, job_days=90, body_days=0.5) == (25, 0, 0)


# --- the pace of a pass


def test_a_slow_batch_halves_the_next_and_a_fast_one_doubles_it_back():
    """Each batch's size follows the time the last took (PACE a batch), between SMALLEST and the largest asked,
    and the pass pauses after a batch as long as it took: the webhook's writes take the turn in between."""
    pacer, sizes = retention.Pacer(100), []

    def batch(seconds):
        return lambda size: sizes.append(size) or time.sleep(seconds)

    for _ in range(5):
        pacer.timed(batch(retention.PACE * 2))
    started = time.perf_counter()
    pacer.pause()
    paused = time.perf_counter() - started
    for _ in range(4):
        pacer.timed(batch(0))
    assert sizes == [100, 50, 25, 12, 10, 10, 20, 40, 80]
    assert pacer.size == 100 and retention.PACE * 2 <= paused < retention.PACE * 2 + 0.05


@pytest.mark.sqlite_only
def test_the_pause_between_batches_copies_the_wal_into_the_database_file(db):
    """Between two batches the pass checkpoints outside the writers' turn: rows committed to the WAL are in the
    database file itself afterwards (read with immutable=1, which ignores the WAL)."""

    def in_file():
        with closing(sqlite3.connect(f"file:{db.path}?immutable=1", uri=True)) as connection:
            return connection.execute("SELECT count(*) FROM jobs WHERE job_id LIKE 'walled-%'").fetchone()[0]

    insert(db, "walled", 5, created_at=OLD)
    assert in_file() == 0  # committed, in the WAL only
    retention.Pacer(10, db).pause()
    assert in_file() == 5
