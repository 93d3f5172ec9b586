"""Durability through the real gunicorn: restarts, reloads, recycled and killed workers, two instances on one
database, the database unavailable, and migrations."""

import itertools
import os
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import requests

from image_webhook.storage.database import deliveries, jobs, migrate, open_database
from tests.payloads import COMPLETED, URL, payload
from tests.servers import DEFAULT_WORKERS, GunicornServer, PostgresServer, require, run_to_exit

DEV = {"APP_ENV": "development"}
DUPLICATE = {"success": True, "message": "Job déjà traité"}
DB_TIMEOUT = 1  # seconds: the service's database timeout in the unavailability tests


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request, tmp_path):
    """A database for gunicorn: a SQLite file its master migrates, or a PostgreSQL copy of the migrated template."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    return request.getfixturevalue("postgres").create_database(f"durability_{uuid.uuid4().hex}", template="migrated")


def new_jobs(prefix, count):
    run = uuid.uuid4().hex[:8]
    return [f"{prefix}-{run}-{i}" for i in range(count)]


def post(url, job_id, session=None):
    """Deliver the completed notification of `job_id`: (status, JSON body); a lost connection is (None, None),
    an answer the backend never got."""
    try:
        response = (session or requests).post(url + URL, json=payload(COMPLETED, job_id), timeout=30)
    except requests.RequestException:
        return None, None
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def processed(answer):
    status, body = answer
    return status == 200 and isinstance(body, dict) and body.get("images_count") == 1


def burst(urls, job_order, threads=32, sessions=False, stop=None, on_answer=None, answers=None):
    """Deliver the job ids of `job_order` from `threads` threads, spread over `urls` (a requests.Session per
    thread and server, or a connection per request); return [(job_id, (status, body))], also appended to
    `answers` as they come. `on_answer(count)` runs under the lock after each answer; `stop` ends it early."""
    answers, lock, turns = [] if answers is None else answers, threading.Lock(), itertools.count()

    def deliver():
        pool = {url: requests.Session() for url in urls} if sessions else {}
        try:
            while (i := next(turns)) < len(job_order) and not (stop and stop.is_set()):
                url = urls[i % len(urls)]
                answer = post(url, job_order[i], pool.get(url))
                with lock:
                    answers.append((job_order[i], answer))
                    if on_answer:
                        on_answer(len(answers))
        finally:
            for session in pool.values():
                session.close()

    workers = [threading.Thread(target=deliver) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(worker.is_alive() for worker in workers), "the burst did not end within 120 s"
    return answers


def retry_unanswered(url, answers, attempts=20):
    """The backend's retries: each job with no 200 answer (5xx, or a lost connection) is delivered again
    until it gets one; return the retries' answers."""
    answered = {job for job, (status, _) in answers if status == 200}
    retries = []
    for job in {job for job, _ in answers} - answered:
        for _ in range(attempts):
            retries.append((job, answer := post(url, job)))
            if answer[0] == 200:
                break
            time.sleep(0.2)
    return retries


def rows(url):
    """job_id -> (status, deliveries, duplicates) of every job, read with the driver."""
    sql = "SELECT job_id, status, deliveries, duplicates FROM jobs"
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)) as connection:
            return {row[0]: tuple(row[1:]) for row in connection.execute(sql)}
    with psycopg.connect(url) as connection:
        return {row[0]: tuple(row[1:]) for row in connection.execute(sql)}


def find(url, job_id):
    """The job as the service serializes it."""
    db = open_database(url, timeout=5)
    try:
        return jobs.find(db, job_id)
    finally:
        db.close()


def worker_pids(master):
    """The worker processes of a gunicorn master: its children."""
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def check_exactly_once(answers, job_ids, url):
    """Every job has exactly one processed answer, every other 200 is 'Job déjà traité', and the database
    holds one completed row per job whose deliveries are the 200 answers."""
    per_job = Counter(job for job, answer in answers if processed(answer))
    assert [job for job in job_ids if per_job[job] > 1] == [], "jobs processed twice"
    assert [job for job in job_ids if per_job[job] == 0] == [], "jobs never answered as processed"
    others = [(job, body) for job, (status, body) in answers if status == 200 and not processed((status, body))]
    assert [(job, body) for job, body in others if body != DUPLICATE] == []
    recorded, ok = rows(url), Counter(job for job, (status, _) in answers if status == 200)
    assert {job: recorded.get(job, (None,))[0] for job in job_ids} == dict.fromkeys(job_ids, "completed")
    assert {job: recorded[job][1] for job in job_ids} == {job: ok[job] for job in job_ids}


def test_a_completed_job_is_remembered_across_a_restart(tmp_path, shared_url):
    """A completed job, gunicorn stopped with SIGTERM and started again on the same database: the same job is
    'Job déjà traité', and its row holds the images, the metadata and the prompt."""
    env, job_id = {**DEV, "DATABASE_URL": shared_url, "WEB_CONCURRENCY": "2"}, new_jobs("restart", 1)[0]
    with GunicornServer(tmp_path, env) as server:
        assert processed(post(server.url, job_id))
        assert server.stop() == 0
    with GunicornServer(tmp_path, env) as server:
        assert post(server.url, job_id) == (200, DUPLICATE)
    job = find(shared_url, job_id)
    assert (job["status"], job["deliveries"], job["duplicates"]) == ("completed", 2, 1)
    assert job["images"] == COMPLETED["data"]["images"] and job["metadata"] == COMPLETED["data"]["metadata"]
    assert job["prompt"] == "Un chat astronaute dans l'espace"


@pytest.mark.parametrize("how", ["reload", "recycle"])
def test_no_job_is_processed_twice_across_a_reload_or_recycled_workers(tmp_path, how):
    """600 deliveries (300 jobs, each sent twice, interleaved) from 32 threads while the workers are replaced
    (kill -HUP in the middle, or --max-requests 20): each job is processed exactly once."""
    job_ids = new_jobs(how, 300)
    lag = 16  # each job's second delivery comes 16 jobs later: often in flight with the first
    order = []
    for i in range(len(job_ids) + lag):
        order += job_ids[i : i + 1] + (job_ids[i - lag : i - lag + 1] if i >= lag else [])
    assert sorted(order) == sorted(job_ids * 2)
    args = ["--max-requests", "20", "--max-requests-jitter", "5"] if how == "recycle" else []
    with GunicornServer(tmp_path, DEV, args=args) as server:

        def reload_midway(count):
            if how == "reload" and count == 200:
                os.kill(server.process.pid, signal.SIGHUP)

        answers = burst([server.url], order, on_answer=reload_midway)
        answers += retry_unanswered(server.url, answers)
        assert server.stop() == 0
    output = server.output()
    assert "Handling signal: hup" in output if how == "reload" else output.count("Autorestarting worker") >= 10
    check_exactly_once(answers, job_ids, server.env["DATABASE_URL"])


def test_every_job_answered_processed_survives_killed_workers(tmp_path):
    """Every worker killed with SIGKILL during a burst, then the master stopped and started again on the same
    database: every job answered as processed is completed there, and is 'Job déjà traité'."""
    job_ids, stop, answered_before_kill, killed = new_jobs("crash", 3000), threading.Event(), [], []
    server = GunicornServer(tmp_path, DEV).start()
    url = server.env["DATABASE_URL"]

    def kill_midway(answers):
        while len(answers) < 300 and not stop.is_set():
            time.sleep(0.005)
        answered_before_kill.extend(job for job, answer in list(answers) if processed(answer))
        killed.extend(worker_pids(server.process.pid))
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)  # the burst goes on against the workers the master starts again
        server.stop()
        stop.set()

    answers = []
    killer = threading.Thread(target=kill_midway, args=(answers,))
    try:
        killer.start()
        burst([server.url], job_ids, stop=stop, answers=answers)
    finally:
        stop.set()
        killer.join(60)
        server.stop()
    assert killed and len(answered_before_kill) >= 200
    answered = [job for job, answer in answers if processed(answer)]
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with GunicornServer(tmp_path, DEV) as again:
        recorded = rows(url)
        assert [job for job in answered if recorded.get(job, (None,))[0] != "completed"] == []
        assert all(post(again.url, job) == (200, DUPLICATE) for job in answered_before_kill[-20:])


def test_two_instances_on_one_database_process_each_job_once(tmp_path, shared_url):
    """Two gunicorn instances on one database: 64 racing deliveries of one job spread over both give exactly one
    processed and 63 'Job déjà traité'; 2,000 distinct jobs spread over both are each processed exactly once."""
    env = {**DEV, "DATABASE_URL": shared_url}
    race, job_ids = new_jobs("race", 1)[0], new_jobs("pair", 2000)
    with GunicornServer(tmp_path, env) as one, GunicornServer(tmp_path, env) as two:
        for server in (one, two):  # every worker forked (one still loading the app leaves the race to the others)
            server.wait_for("Booting worker with pid", DEFAULT_WORKERS, timeout=30)
        urls, barrier = [one.url, two.url], threading.Barrier(64)

        def racer(i):
            barrier.wait(timeout=30)
            return post(urls[i % 2], race)

        with ThreadPoolExecutor(64) as pool:
            racing = list(pool.map(racer, range(64)))
        answers = burst(urls, job_ids, threads=32, sessions=True)
        assert one.stop() == 0 and two.stop() == 0  # the fast path's duplicates are committed on the way out
    assert sum(map(processed, racing)) == 1 and racing.count((200, DUPLICATE)) == 63
    assert Counter(status for _, (status, _) in answers) == {200: 2000}
    assert Counter(job for job, answer in answers if processed(answer)) == dict.fromkeys(job_ids, 1)
    recorded = rows(shared_url)
    assert recorded[race] == ("completed", 64, 63)
    assert {job: recorded.get(job) for job in job_ids} == dict.fromkeys(job_ids, ("completed", 1, 0))


def unavailable(server, job_id):
    """While the database is unavailable: 5 simultaneous deliveries of a new job are each answered 503 with
    Retry-After within 2 x DB_TIMEOUT + 2 s (a write waits DB_TIMEOUT at most to be started, a started one the
    database's own timeout, DB_TIMEOUT again: docs/storage.md; 2 s for a loaded machine: one took 3.01 s in CI
    against the former DB_TIMEOUT + 2); return what /readyz answered meanwhile (checked by the caller last, so
    that the recovery is checked too)."""

    def deliver(_):
        started = time.monotonic()
        response = requests.post(server.url + URL, json=payload(COMPLETED, job_id), timeout=30)
        return response, time.monotonic() - started

    with ThreadPoolExecutor(5) as pool:
        for response, elapsed in pool.map(deliver, range(5)):
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0 and "error" in response.json()
            assert elapsed < 2 * DB_TIMEOUT + 2
    return [requests.get(server.url + "/readyz", timeout=30).status_code for _ in range(5)]


def recovered(server, answers, blocked):
    """After recovery: the backend's retries of the refused job (until a 200) process it once, /readyz is 200,
    and every job answered as processed is completed in the database."""
    retries = retry_unanswered(server.url, [(blocked, (503, None))])
    assert [answer[0] for _, answer in retries][-1] == 200 and sum(processed(answer) for _, answer in retries) == 1
    assert post(server.url, blocked) == (200, DUPLICATE)
    assert all(requests.get(server.url + "/readyz", timeout=30).status_code == 200 for _ in range(5))
    answers = answers + retries
    recorded = rows(server.env["DATABASE_URL"])
    assert [job for job, answer in answers if processed(answer) and recorded[job][0] != "completed"] == []
    assert recorded[blocked][0] == "completed"


def test_sqlite_locked_is_503_then_the_retry_is_processed_once(tmp_path):
    """The SQLite file locked by another connection's transaction is 503 with Retry-After in bounded time and
    /readyz 503, nothing marked: once the lock is released the retry is processed once, nothing 200 is missing."""
    # a lock, not chmod: running as root, a read-only file does not stop root from writing it
    with GunicornServer(tmp_path, {**DEV, "DB_TIMEOUT": str(DB_TIMEOUT), "WEB_CONCURRENCY": "2"}) as server:
        before, blocked = new_jobs("before-lock", 20), new_jobs("locked", 1)[0]
        answers = burst([server.url], before, threads=4)
        assert all(map(processed, (answer for _, answer in answers)))
        with closing(sqlite3.connect(tmp_path / "jobs.sqlite3", isolation_level=None, timeout=10)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            try:
                readiness = unavailable(server, blocked)
            finally:
                locker.execute("ROLLBACK")
        recovered(server, answers, blocked)
    assert readiness == [503] * 5, "/readyz said ready while the database was locked"


def ready(server):
    return requests.get(server.url + "/readyz", timeout=30).status_code == 200


def test_postgresql_stopped_is_503_then_the_service_recovers_without_a_restart(tmp_path):
    """PostgreSQL restarted unseen, then stopped for 8 s: the next deliveries succeed (broken connections are
    replaced, not used), the outage is 503 with Retry-After in bounded time, /readyz and reads 503 until, within
    DB_TIMEOUT + 2 s of its return, both are 200 again, the retry is processed once and nothing answered 200 is
    missing (one worker, so that which connections the restart broke is known)."""
    require("postgres")
    database = PostgresServer().start()  # this test's own: it stops it, then starts it on the same data and port
    try:
        url = database.create_database("jobs")  # empty: the gunicorn master migrates it
        env = {**DEV, "DATABASE_URL": url, "DB_TIMEOUT": str(DB_TIMEOUT), "WEB_CONCURRENCY": "1"}
        with GunicornServer(tmp_path, env) as server:
            answers = burst([server.url], new_jobs("before-restart", 20), threads=4)
            assert all(processed(answer) for _, answer in answers) and ready(server)
            database.stop()
            database.start()  # nothing reached the service meanwhile: its connections are broken, unnoticed
            after = burst([server.url], new_jobs("after-restart", 20), threads=4)
            answers += after
            blocked = new_jobs("stopped", 1)[0]
            database.stop()
            readiness, first_probe = [requests.get(server.url + "/readyz", timeout=30).status_code], time.monotonic()
            readiness += unavailable(server, blocked)
            known = answers[0][0]
            while time.monotonic() - first_probe < 8:  # an outage of 8 s: a load balancer probes, the application reads
                readiness.append(requests.get(server.url + "/readyz", timeout=30).status_code)
                readiness.append(requests.get(f"{server.url}/api/jobs/{known}", timeout=30).status_code)
                time.sleep(0.5)
            database.start()
            back, deadline = time.monotonic(), time.monotonic() + 30
            while not ready(server) and time.monotonic() < deadline:
                time.sleep(0.1)
            lag = time.monotonic() - back
            reads = [requests.get(f"{server.url}/api/jobs/{known}", timeout=30).status_code for _ in range(3)]
            recovered(server, answers, blocked)
        # checked together, so that a failure shows every one
        found = {
            "/readyz and reads while stopped": sorted(set(readiness)),
            "answers after an unseen restart (broken connections used?)": Counter(status for _, (status, _) in after),
            f"/readyz 200 again within {DB_TIMEOUT + 2} s of PostgreSQL's return": f"{lag:.1f} s"
            if lag >= DB_TIMEOUT + 2
            else True,
            "GET /api/jobs/<id> once /readyz is 200 (pooled readers)": reads,
        }
        assert found == dict(zip(found, ([503], {200: len(after)}, True, [200] * 3), strict=True))
    finally:
        database.stop()
        database.remove()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_rows_written_at_the_first_revision_survive_the_upgrade(tmp_path, request, dialect):
    """A database created at revision 0001, with a job and a delivery written in plain SQL, upgrades to the
    latest revision and keeps them as the service reads them; nothing is pending afterwards."""
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"old_{uuid.uuid4().hex}")
    migrate.upgrade(url, "0001")
    assert migrate.pending(url) == ["0002", "0003", "0004", "0005"]
    values = {
        "job_id": "old-job",
        "status": "completed",
        "progress": 100,
        "prompt": "Un chat astronaute dans l'espace",
        "images": '[{"url": "http://localhost:9006/image_1.png", "description": "Un chat astronaute dans l\'espace"}]',
        "metadata": '{"model_name": "gemini-2.0-flash-exp"}',
        "created_at": "2025-10-21T16:44:00.000000+00:00",
        "completed_at": "2025-10-21T16:45:00.000000+00:00",
        "raw_body": b'{"job_id": "old-job", "status": "completed"}',
    }
    statements = [
        """INSERT INTO jobs (job_id, status, progress, prompt, images, metadata, created_at, updated_at,
        completed_at, deliveries, duplicates) VALUES (:job_id, :status, :progress, :prompt, :images, :metadata,
        :created_at, :completed_at, :completed_at, 1, 0)""",
        """INSERT INTO deliveries (job_id, status, received_at, raw_body, outcome, response_status)
        VALUES (:job_id, :status, :completed_at, :raw_body, 'processed', 200)""",
    ]
    if dialect == "sqlite":
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection, connection:
            for statement in statements:
                connection.execute(statement, values)
    else:
        with psycopg.connect(url) as connection:
            for statement in statements:
                connection.execute(re.sub(r":(\w+)", r"%(\1)s", statement), values)
    migrate.upgrade(url)
    assert migrate.pending(url) == []
    db = open_database(url, timeout=5)
    try:
        job, listed = jobs.find(db, "old-job"), deliveries.for_job(db, "old-job", include_body=True)
    finally:
        db.close()
    assert (job["status"], job["progress"], job["prompt"], job["deliveries"]) == ("completed", 100, values["prompt"], 1)
    assert job["images"][0]["url"] == "http://localhost:9006/image_1.png"
    assert job["copies"] == []  # recorded before the copies existed: none is made for it
    assert job["metadata"] == {"model_name": "gemini-2.0-flash-exp"}
    assert job["created_at"] == values["created_at"] and job["completed_at"] == values["completed_at"]
    assert [(d["outcome"], d["body"]) for d in listed] == [("processed", values["raw_body"].decode())]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_gunicorn_refuses_an_unmigrated_database_when_told_not_to_migrate(tmp_path, request, dialect):
    """DB_MIGRATE_ON_START=off on a database without the schema: gunicorn exits before any worker, naming
    `make migrate`."""
    url = f"sqlite:///{tmp_path / 'jobs.sqlite3'}"
    if dialect == "postgresql":
        url = request.getfixturevalue("postgres").create_database(f"empty_{uuid.uuid4().hex}")
    code, output = run_to_exit(tmp_path, {**DEV, "DATABASE_URL": url, "DB_MIGRATE_ON_START": "off"})
    assert code != 0 and "make migrate" in output and "0001" in output
    assert "Booting worker" not in output
