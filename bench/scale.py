"""make bench-scale: what the service costs as its records grow (issue 22, "Bounded costs"), in about 5 minutes.

A SQLite database is seeded like a week of production (1,000,000 jobs by default, 1–4 images and 4–8
deliveries each: progress, the terminal one, duplicates; ~700-byte bodies; image_copies rows), the real
service (gunicorn, default configuration, APP_ENV production) is started on it on loopback, and measured:

1. GET /monitoring.json?period=hour|day|week at 10,000 jobs and at --jobs, and its 304 with the ETag;
2. the flat reads (a job, /api/jobs, a job's deliveries, /jobs, /metrics) at both sizes;
3. 24 connections sending HTTP Basic with a wrong password to /jobs: the webhook's median against quiet;
4. 40 padded duplicates and 40 padded progress notifications: the database's growth, and the size of
   GET /api/jobs/<id>/deliveries?include=body;
5. POST latency during a retention pass deleting ~10 % of the records, during a pass with nothing to delete
   (`flask jobs purge`, a separate process on the same database), and without a pass.

Every figure is checked against its target; the table goes to bench/results/scale-<date>.md.
"""

import argparse
import base64
import contextlib
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from werkzeug.security import generate_password_hash

from bench.harness import SECRET
from image_webhook.storage.database import migrate
from tests.payloads import COMPLETED, PROGRESS, URL, payload
from tests.servers import ROOT, GunicornServer

RESULTS = ROOT / "bench" / "results"
BASE_REVISION = "0004"  # the tables seeded here; later migrations (e.g. rollups and their backfill) run after
DAYS = 7
SMALL = 10_000
TOKEN = "bench-token-0123456789abcdefghijklmnopqrstuvwxyz"
USER, PASSWORD = "bench", "bench-password"
START_TIMEOUT = 180  # seconds: 5 workers boot on two busy cores, against a database of gigabytes
PERIODS = ("hour", "day", "week")
PADDING = 1024 * 1024 - 4096  # a padded body stays under MAX_CONTENT_LENGTH (1 MiB)
MiB = 1024 * 1024


# --- seeding --------------------------------------------------------------------------------------------


def image_list(count):
    return [
        {
            "file_path": f"./generated_images/job/image_{n + 1}.png",
            "url": f"http://localhost:9006/generated_images/job/image_{n + 1}.png",
            "description": "Un chat astronaute dans l'espace",
            "format": "PNG",
            "size_bytes": 1_500_000 + 250_000 * n,
            "dimensions": "1024x1024",
        }
        for n in range(count)
    ]


IMAGES = {n: json.dumps(image_list(n), ensure_ascii=False) for n in range(1, 5)}
METADATA = json.dumps(COMPLETED["data"]["metadata"])
CLAIMS = json.dumps({"format": "PNG", "dimensions": "1024x1024", "size_bytes": 1_500_000})
JOB_COLUMNS = (
    "job_id, status, progress, message, prompt, images, metadata, error_message, user_id, organization_id, "
    "created_at, updated_at, completed_at, processing_time_ms, deliveries, duplicates"
)
DELIVERY_COLUMNS = (
    "job_id, status, received_at, raw_body, message_id, client_address, outcome, reason, response_status, response_body"
)
COPY_COLUMNS = (
    "job_id, position, url, claims, state, attempts, due_at, sha256, bytes, content_type, width, height, "
    "verified, created_at, updated_at"
)
ANSWER = '{"success": true, "message": "Webhook traité avec succès"}'
DUPLICATE_ANSWER = '{"success": true, "message": "Webhook déjà traité"}'


def body(job_id, status, images=0):
    """A delivery's body as the sender posts it, ~700 bytes (progress ~300)."""
    if status == "completed":
        data = payload(COMPLETED, job_id)
        data["data"]["images"] = image_list(images)
    elif status == "failed":
        data = payload({**PROGRESS, "status": "failed", "error_message": "Clé API Google invalide"}, job_id)
    else:
        data = payload(PROGRESS, job_id, status=status)
    return json.dumps(data, ensure_ascii=False).encode()


def generate(count, now):
    """Rows for jobs, deliveries and image_copies of `count` jobs over the last DAYS days, oldest first,
    in chunks of about 20,000 jobs."""
    rng = random.Random(22)
    first = now - timedelta(days=DAYS)
    step = timedelta(days=DAYS) / count
    templates = {}
    jobs_rows, delivery_rows, copy_rows = [], [], []
    for n in range(count):
        job_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        created = first + step * n
        draw = rng.random()
        status = "completed" if draw < 0.9 else "failed" if draw < 0.95 else "generating"
        images = rng.randint(1, 4) if status == "completed" else 0
        kept = rng.randint(4, 8)
        duplicates = 1 + (rng.random() < 0.3) if status != "generating" and rng.random() < 0.25 else 0
        progress_count = kept - duplicates - (status != "generating")
        done = created + timedelta(seconds=8 + rng.random() * 10)
        text = created.isoformat(timespec="microseconds")
        done_text = done.isoformat(timespec="microseconds")
        terminal = status in ("completed", "failed")
        jobs_rows.append(
            (
                job_id,
                status,
                100.0 if status == "completed" else 50.0,
                "Échec de la génération d'images" if status == "failed" else None,
                "Un chat astronaute dans l'espace",
                IMAGES[images] if images else None,
                METADATA if images else None,
                "Clé API Google invalide" if status == "failed" else None,
                f"user-{rng.randrange(10_000)}",
                f"org-{rng.randrange(100)}",
                text,
                done_text if terminal else text,
                done_text if terminal else None,
                2 + rng.random() * 20 if terminal else None,
                kept,
                duplicates,
            )
        )
        key = (status, images)
        if key not in templates:
            templates[key] = body("JOBID", status, images).split(b"JOBID")
        progress_key = ("generating", 0)
        if progress_key not in templates:
            templates[progress_key] = body("JOBID", "generating").split(b"JOBID")
        job_bytes = job_id.encode()
        for p in range(progress_count):
            at = (created + timedelta(seconds=1 + p)).isoformat(timespec="microseconds")
            raw = job_bytes.join(templates[progress_key])
            delivery_rows.append((job_id, "generating", at, raw, None, "10.0.0.7", "progress", None, 200, ANSWER))
        if terminal:
            raw = job_bytes.join(templates[key])
            delivery_rows.append((job_id, status, done_text, raw, None, "10.0.0.7", "processed", None, 200, ANSWER))
            for d in range(duplicates):
                at = (done + timedelta(seconds=5 + d)).isoformat(timespec="microseconds")
                delivery_rows.append(
                    (job_id, status, at, raw, None, "10.0.0.7", "duplicate", None, 200, DUPLICATE_ANSWER)
                )
        for position in range(images):
            copy_rows.append(
                (
                    job_id,
                    position,
                    f"http://localhost:9006/generated_images/{job_id}/image_{position + 1}.png",
                    CLAIMS,
                    "stored",
                    1,
                    done_text,
                    f"{rng.getrandbits(256):064x}",
                    1_500_000,
                    "image/png",
                    1024,
                    1024,
                    1,
                    done_text,
                    done_text,
                )
            )
        if len(jobs_rows) >= 20_000:
            yield jobs_rows, delivery_rows, copy_rows
            jobs_rows, delivery_rows, copy_rows = [], [], []
    if jobs_rows:
        yield jobs_rows, delivery_rows, copy_rows


def seed(path, count):
    """A SQLite file migrated to BASE_REVISION, `count` jobs written by executemany with the secondary indexes
    dropped (made again after, one sort each), then migrated to head so that a later migration (a backfill)
    runs on the seeded records. Return the seconds it took."""
    began = time.monotonic()
    url = f"sqlite:///{path}"
    migrate.upgrade(url, BASE_REVISION)
    connection = sqlite3.connect(path, isolation_level=None)
    # no journal while seeding: in WAL the one big transaction would be written twice (the WAL, its checkpoint)
    connection.execute("PRAGMA journal_mode = OFF")
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("PRAGMA cache_size = -400000")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('jobs', 'deliveries', 'image_copies') AND name NOT LIKE 'sqlite_autoindex%'"
    ).fetchall()
    connection.execute("BEGIN")
    for name, _ in indexes:
        connection.execute(f"DROP INDEX {name}")
    now = datetime.now(UTC)
    for jobs_rows, delivery_rows, copy_rows in generate(count, now):
        connection.executemany(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({', '.join('?' * 16)})", jobs_rows)
        connection.executemany(
            f"INSERT INTO deliveries ({DELIVERY_COLUMNS}) VALUES ({', '.join('?' * 10)})", delivery_rows
        )
        connection.executemany(f"INSERT INTO image_copies ({COPY_COLUMNS}) VALUES ({', '.join('?' * 15)})", copy_rows)
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.execute("PRAGMA journal_mode = WAL")  # the service's mode
    connection.close()
    migrate.upgrade(url)  # whatever came after BASE_REVISION, on the seeded records
    return time.monotonic() - began


def used_bytes(path):
    """The database's used pages (WAL included, free pages excluded), in bytes."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    return (pages - free) * size


def counts(path, before="9999"):
    """How many jobs (created) and deliveries (received) the database holds before the time `before`."""
    tables = {"jobs": "created_at", "deliveries": "received_at"}
    with contextlib.closing(sqlite3.connect(path)) as connection:
        sql = "SELECT COUNT(*) FROM {} WHERE {} < ?"
        return {t: connection.execute(sql.format(t, column), (before,)).fetchone()[0] for t, column in tables.items()}


# --- the service ----------------------------------------------------------------------------------------


def environment(path):
    return {
        "APP_ENV": "production",
        "WEBHOOK_SECRET": SECRET,
        "JOBS_API_TOKENS": TOKEN,
        "DASHBOARD_USERS": f"{USER}:{generate_password_hash(PASSWORD)}",
        "DATABASE_URL": f"sqlite:///{path}",
        "IMAGE_COPY_CONCURRENCY": "0",  # no copier fetching the seeded URLs (nothing listens on them)
        # the scenario: retention deletes the oldest records; the bodies of the seeded week's progress
        # deliveries are not cleared as a first pass on a new deployment would (7 days: as long as the records)
        "PROGRESS_BODY_RETENTION_DAYS": "7",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def serve(directory, path):
    return GunicornServer(directory, environment(path)).start(timeout=START_TIMEOUT)


class Client:
    """One keep-alive session with the service's credentials; each call timed in ms."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self.api = {"Authorization": f"Bearer {TOKEN}"}
        self.basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}

    def timed(self, method, target, **kwargs):
        kwargs.setdefault("timeout", 60)
        began = time.perf_counter()
        response = self.session.request(method, self.server.url + target, **kwargs)
        elapsed = (time.perf_counter() - began) * 1000
        return response, elapsed

    def post(self, body_or_json, job_id=None, refused=None):
        """The POST's ms; an answer other than 200 (or none) stops the run, or is counted in `refused` (status or
        error: count), and then no answer at all is None."""
        headers = {"X-Webhook-Secret": SECRET, "Content-Type": "application/json"}
        data = body_or_json if isinstance(body_or_json, bytes) else json.dumps(body_or_json).encode()
        try:
            response, elapsed = self.timed("POST", URL, data=data, headers=headers)
        except requests.RequestException as error:  # no answer at all (a timeout, a reset)
            if refused is None:
                raise
            refused[type(error).__name__] = refused.get(type(error).__name__, 0) + 1
            return None
        if response.status_code != 200:
            if refused is None:
                raise SystemExit(f"POST {job_id}: {response.status_code} {response.text[:300]}")
            refused[response.status_code] = refused.get(response.status_code, 0) + 1
        return elapsed


def samples(client, target, headers, count, budget, expect=200):
    """The median ms of up to `count` GETs of `target` (2 more first, to warm), within `budget` seconds."""
    times, deadline = [], time.monotonic() + budget
    for n in range(count + 2):
        response, elapsed = client.timed("GET", target, headers=headers)
        if response.status_code != expect:
            raise SystemExit(f"GET {target}: {response.status_code} {response.text[:300]}")
        times += [elapsed] if n >= 2 else []
        if time.monotonic() > deadline and times:
            break
    return statistics.median(times)


def reads(server, job_id, count):
    """The medians of monitoring per period, its 304, and the flat reads."""
    client = Client(server)
    for _ in range(20):  # each worker thread opens its connection
        client.timed("GET", "/api/jobs?limit=1", headers=client.api)
    found = {}
    for period in PERIODS:
        found[f"monitoring {period}"] = samples(client, f"/monitoring.json?period={period}", client.basic, count, 30)
        print(f"  monitoring {period}: {found[f'monitoring {period}']:.1f} ms", flush=True)
    response, _ = client.timed("GET", "/monitoring.json?period=day", headers=client.basic)
    etag = response.headers.get("ETag")
    if etag:
        found["monitoring 304"] = samples(
            client, "/monitoring.json?period=day", {**client.basic, "If-None-Match": etag}, count, 30, expect=304
        )
    flat = {
        "GET a job": (f"/api/jobs/{job_id}", client.api),
        "/api/jobs page 1": ("/api/jobs", client.api),
        "a job's deliveries": (f"/api/jobs/{job_id}/deliveries", client.api),
        "/jobs": ("/jobs", client.basic),
        "/metrics": ("/metrics", {}),
    }
    for name, (target, headers) in flat.items():
        found[name] = samples(client, target, headers, count, 30)
        print(f"  {name}: {found[name]:.1f} ms", flush=True)
    return found


def newest_job(path):
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT job_id FROM jobs WHERE status = 'completed' ORDER BY id DESC").fetchone()[0]


# --- load while something else happens ------------------------------------------------------------------


def posts(client, seconds, stop=None, refused=None, moments=None):
    """New completed jobs posted one after another for `seconds` (or until `stop` is set): their ms; the
    answers other than 200 counted in `refused` when given (else they stop the run); when each was sent
    (time.monotonic()) appended to `moments` when given."""
    times, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        job_id = str(uuid.uuid4())
        sent = time.monotonic()
        elapsed = client.post(payload(COMPLETED, job_id), job_id, refused)
        times += [elapsed] if elapsed is not None else []
        if moments is not None and elapsed is not None:
            moments.append(sent)
    return times


def p99(times):
    return sorted(times)[max(0, round(len(times) * 0.99) - 1)]


def bad_basic(server, seconds):
    """The webhook's median ms quiet, then while 24 connections send a wrong password to /jobs (wrk)."""
    client = Client(server)
    posts(client, 2)
    quiet = statistics.median(posts(client, seconds))
    wrong = "Basic " + base64.b64encode(f"{USER}:wrong-password".encode()).decode()
    attack = subprocess.Popen(
        [
            "wrk",
            "-t2",
            "-c24",
            f"-d{seconds + 4}s",
            "--timeout",
            "10s",
            "-H",
            f"Authorization: {wrong}",
            server.url + "/jobs",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(2)
    busy = statistics.median(posts(client, seconds))
    out = attack.communicate(timeout=seconds + 60)[0]
    rate = next((line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")), "?")
    print(f"  webhook median quiet {quiet:.1f} ms, under bad Basic {busy:.1f} ms ({rate} bad requests/s)", flush=True)
    return {"webhook quiet": quiet, "webhook under bad Basic": busy, "bad Basic req/s": rate}


def padded(server, path):
    """40 padded duplicates of a completed job and 40 padded progress notifications of another: the database's
    growth, and the size of the duplicated job's deliveries with their bodies."""
    client = Client(server)
    done, running = str(uuid.uuid4()), str(uuid.uuid4())
    client.post(payload(COMPLETED, done), done)
    client.post(payload(PROGRESS, running, progress=10), running)
    time.sleep(1)
    before = used_bytes(path)
    pad = "x" * PADDING
    for n in range(40):
        client.post(json.dumps(payload(COMPLETED, done, padding=pad)).encode(), done)
        client.post(json.dumps(payload(PROGRESS, running, progress=11 + n, padding=pad)).encode(), running)
    time.sleep(2)  # the unawaited writes (duplicates) reach the file in the next group commit
    growth = (used_bytes(path) - before) / MiB
    response, _ = client.timed("GET", f"/api/jobs/{done}/deliveries?include=body", headers=client.api)
    response.raise_for_status()
    size = len(response.content)
    print(f"  growth {growth:.1f} MiB, deliveries?include=body {size:,} bytes", flush=True)
    return {"padded growth MiB": growth, "deliveries with bodies bytes": size}


def purge_pass(server, path, days, seconds_cap):
    """POST ms while `flask jobs purge` runs on the same database (both ages `days`): (times, the answers
    other than 200 by status, seconds, the command's exit status and last line)."""
    env = {**server.env, "LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "flask", "--app", "app", "jobs", "purge"]
    command += ["--deliveries-days", str(days), "--jobs-days", str(days)]
    client = Client(server)
    stop = threading.Event()
    times, refused, moments = [], {}, []
    thread = threading.Thread(
        target=lambda: times.extend(posts(client, seconds_cap, stop, refused, moments)), daemon=True
    )
    began = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    thread.start()
    try:
        out = process.communicate(timeout=seconds_cap)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        out = process.communicate()[0] + f"\n(stopped after {seconds_cap} s)"
    took = time.monotonic() - began
    stop.set()
    thread.join(30)
    last = out.strip().splitlines()[-1] if out.strip() else ""
    slowest = sorted(zip(times, moments, strict=True), reverse=True)[:3]
    said = ", ".join(f"{ms:.0f} ms at {at - began:.1f} s" for ms, at in slowest)
    print(f"  the slowest POSTs of a {took:.1f} s pass: {said}", flush=True)
    return times, refused, took, f"exit {process.returncode}: {last}"


def retention(server, path, seconds):
    """POST max and p99 without a pass, during a pass deleting ~10 % of the records, during a pass with nothing
    to delete (the same ages again)."""
    client = Client(server)
    posts(client, 2)
    alone = posts(client, seconds)
    days = DAYS * 0.9  # the oldest 10 % of a week
    cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")
    before = counts(path, cutoff)
    deleting, refused, took, out = purge_pass(server, path, days, 600)
    after = counts(path, cutoff)
    print(f"  pass deleting: {took:.0f} s, {before} -> {after}, POSTs refused {refused}; {out}", flush=True)
    empty, refused_empty, took_empty, out_empty = purge_pass(server, path, days, 600)
    print(f"  pass with nothing to delete: {took_empty:.0f} s, POSTs refused {refused_empty}; {out_empty}", flush=True)
    found = {
        "POSTs refused during a deleting pass": refused,
        "POSTs refused during an empty pass": refused_empty,
        "deleting pass command": out,
        "empty pass command": out_empty,
        "POST p99 without a pass": p99(alone),
        "POST max without a pass": max(alone),
        "POST p99 during a deleting pass": p99(deleting) if deleting else None,
        "POST max during a deleting pass": max(deleting) if deleting else None,
        "POST p99 during an empty pass": p99(empty) if empty else None,
        "POST max during an empty pass": max(empty) if empty else None,
        "deleting pass seconds": took,
        "empty pass seconds": took_empty,
        "deleted jobs": before["jobs"] - after["jobs"],
        "deleted deliveries": before["deliveries"] - after["deliveries"],
    }
    for name, value in found.items():
        print(f"  {name}: {value}", flush=True)
    return found


# --- the run ---------------------------------------------------------------------------------------------


def size(count, directory, options, full):
    """Seed `count` jobs, serve them, measure; `full`: the load parts too."""
    path = directory / f"scale-{count}.sqlite3"
    took = seed(path, count)
    print(f"\n{count:,} jobs seeded in {took:.0f} s ({path.stat().st_size / 1e9:.2f} GB, {counts(path)})", flush=True)
    server = serve(directory, path)
    try:
        found = {"seed seconds": took, "database GB": path.stat().st_size / 1e9}
        found |= reads(server, newest_job(path), options.samples)
        if full:
            found |= bad_basic(server, options.seconds)
            found |= padded(server, path)
            found |= retention(server, path, options.seconds)
    finally:
        server.stop()
    path.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    return found


def verdicts(small, large):
    """(figure, value, target, passed) for each target of issue 22."""

    def ms(x):
        return "–" if x is None else f"{x:.1f} ms"

    rows = []
    for period in PERIODS:
        name = f"monitoring {period}"
        rows.append((f"{name} at {large['jobs']:,} (median)", ms(large[name]), "≤ 50 ms", large[name] <= 50))
        cost = large[name] / small[name]
        rows.append((f"{name}: {large['jobs']:,} / {SMALL:,}", f"{cost:.1f} ×", "≤ 2 ×", cost <= 2))
    if "monitoring 304" in large:
        rows.append(("monitoring 304 (median)", ms(large["monitoring 304"]), "≤ 5 ms", large["monitoring 304"] <= 5))
    else:
        rows.append(("monitoring 304 (median)", "no ETag", "≤ 5 ms", False))
    alone = large["POST p99 without a pass"]
    for kind in ("a deleting pass", "an empty pass"):
        top, tail = large[f"POST max during {kind}"], large[f"POST p99 during {kind}"]
        rows.append((f"POST max during {kind}", ms(top), "≤ 100 ms", top is not None and top <= 100))
        ok = tail is not None and tail <= 2 * alone
        rows.append((f"POST p99 during {kind} (without: {alone:.1f} ms)", ms(tail), "≤ 2 × without", ok))
    for kind in ("a deleting pass", "an empty pass"):
        refused = large[f"POSTs refused during {kind}"]
        text = ", ".join(f"{count} × {status}" for status, count in sorted(refused.items(), key=str)) or "none"
        rows.append((f"POSTs answered other than 200 during {kind}", text, "none", not refused))
    slowed = large["webhook under bad Basic"] / large["webhook quiet"]
    rows.append(
        (
            f"webhook median under 24 bad-Basic connections (quiet {large['webhook quiet']:.1f} ms)",
            f"{slowed:.1f} ×",
            "≤ 10 ×",
            slowed <= 10,
        )
    )
    growth = large["padded growth MiB"]
    rows.append(
        ("database growth, 40 padded duplicates + 40 padded progress", f"{growth:.1f} MiB", "< 8 MiB", growth < 8)
    )
    answer = large["deliveries with bodies bytes"]
    rows.append(("GET deliveries?include=body", f"{answer / MiB:.2f} MiB", "≤ 8 MiB", answer <= 8 * MiB))
    return rows


def report(small, large, options, commit):
    rows = verdicts(small, large)
    lines = [
        f"# make bench-scale, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC (commit {commit})",
        "",
        f"SQLite, gunicorn default configuration (5 workers), APP_ENV production, loopback; {SMALL:,} and "
        f"{large['jobs']:,} jobs over {DAYS} days (seeded in {large['seed seconds']:.0f} s, "
        f"{large['database GB']:.2f} GB). Medians of up to {options.samples} requests from one client.",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        *(f"| {name} | {value} | {target} | {'pass' if ok else '**FAIL**'} |" for name, value, target, ok in rows),
        "",
        f"| read (median) | {SMALL:,} jobs | {large['jobs']:,} jobs |",
        "|---|---|---|",
    ]
    reads_ = [f"monitoring {p}" for p in PERIODS] + ["monitoring 304"]
    reads_ += ["GET a job", "/api/jobs page 1", "a job's deliveries", "/jobs", "/metrics"]
    for name in reads_:
        if name in small and name in large:
            lines.append(f"| {name} | {small[name]:.1f} ms | {large[name]:.1f} ms |")
    lines += [
        "",
        f"Retention: the deleting pass removed {large['deleted jobs']:,} jobs and {large['deleted deliveries']:,} "
        f"deliveries in {large['deleting pass seconds']:.0f} s; "
        f"the empty pass took {large['empty pass seconds']:.0f} s (`flask jobs purge`, "
        f"{large['deleting pass command']!r}; {large['empty pass command']!r}). "
        f"Bad Basic: {large['bad Basic req/s']} refused requests/s.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=15, help="timed requests per read")
    parser.add_argument("--seconds", type=int, default=8, help="of POSTs for each load comparison")
    parser.add_argument("--output", type=Path, help=f"default: {RESULTS}/scale-<date>.md")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench-scale installs it (apt-get install wrk)")
    began = time.monotonic()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    directory = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        small = size(SMALL, directory, options, full=False)
        large = size(options.jobs, directory, options, full=True) | {"jobs": options.jobs}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    text = report(small, large, options, commit.stdout.strip() or "?")
    output = options.output or RESULTS / f"scale-{datetime.now(UTC):%Y-%m-%d}.md"
    output.write_text(text)
    print("\n" + text + f"\nwritten to {output}; bench-scale finished in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
