"""make bench-api: what the read API costs, on loopback, in about three minutes.

1. GET /api/jobs/<job_id> of the service (default configuration: SQLite, gunicorn.conf.py) against a bare Flask
   route reading the same row with the same driver (bench/baseline_read_app.py), A B then B A, driven by wrk;
2. the same GET answered 304 (If-None-Match) against its 200;
3. a page of 100 jobs among 1,000,000: SQLite served by the service (each filter, a deep cursor) with each
   query's plan, and PostgreSQL's EXPLAIN ANALYZE of the same SQL on as many rows (docs/queries.md).
"""

import argparse
import base64
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from bench import harness
from image_webhook.storage.database import jobs, migrate
from image_webhook.storage.database.postgres import PostgresDatabase
from tests.payloads import COMPLETED, URL, payload
from tests.servers import ROOT, GunicornServer, PostgresServer

GET = ROOT / "bench" / "get.lua"
BASELINE = "bench.baseline_read_app:app"
START_TIMEOUT = 90  # seconds: gunicorn boots 2 x cores + 1 workers on two busy cores
IMAGES = json.dumps(COMPLETED["data"]["images"], ensure_ascii=False)
METADATA = json.dumps(COMPLETED["data"]["metadata"])
# 100 draws: the statuses of a year of jobs, mostly completed
STATUSES = ["completed"] * 80 + ["pending"] * 8 + ["generating"] * 5 + ["failed"] * 5 + ["initializing", "saving"]
USERS, ORGANIZATIONS = 10_000, 100  # 100 jobs a user, 10,000 an organization
TINY = 50_000  # every 50,000th job belongs to user-tiny of org-tiny: 20 jobs among 1,000,000
COLUMNS = ("job_id", "status", "progress", "prompt", "images", "metadata", "user_id", "organization_id")
TIMES = ("created_at", "updated_at", "completed_at")
# the keyset condition of jobs.page, and the row comparison proposed for PostgreSQL (an index condition there)
KEYSET = "(created_at < %(created_at)s OR (created_at = %(created_at)s AND id < %(id)s))"
ROW_KEYSET = "(created_at, id) < (%(created_at)s, %(id)s)"


def wrk(url, target, seconds, connections, headers=()):
    """One wrk run of bench/get.lua: requests/s, p50, p99 (µs), errors and statuses ≥ 400."""
    env = {"TARGET": target, "HEADERS": "|".join(headers)}
    result = harness.wrk(url, None, seconds, connections, script=GET, env=env)
    if result["errors"] or result["non2xx"]:
        raise SystemExit(f"{url}{target}: {result['errors']} errors, {result['non2xx']} statuses >= 400")
    return result


def start(directory, env, app=None):
    return GunicornServer(directory, {"APP_ENV": "development", **env}, app=app).start(timeout=START_TIMEOUT)


def line(name, result):
    p50, p99 = result["p50_us"] / 1000, result["p99_us"] / 1000
    return f"{name:9} {result['rps']:7.0f} req/s p50 {p50:6.2f} ms p99 {p99:6.2f} ms"


def reads(rounds, seconds, connections):
    """The service's GET of one job against the bare route, then its 304 against its 200; medians and ratios."""
    directory = Path(tempfile.mkdtemp(prefix="bench-api-"))
    for name in ("service", "baseline"):
        (directory / name).mkdir()
    service = start(directory / "service", {})
    database = service.env["DATABASE_URL"]
    job_id = "bench-read-e0145eaa"
    requests.put(f"{service.url}/api/jobs/{job_id}", json={"user_id": "u-1", "prompt": "Un chat"}, timeout=10)
    requests.post(service.url + URL, json=payload(COMPLETED, job_id), timeout=10).raise_for_status()
    baseline = start(directory / "baseline", {"DATABASE_URL": database}, app=BASELINE)
    target = f"/api/jobs/{job_id}"
    try:
        ours, bare = (requests.get(s.url + target, timeout=10) for s in (service, baseline))
        assert ours.json() == bare.json(), "the two servers must answer the same job"
        etag = ours.headers["ETag"]
        assert requests.get(service.url + target, headers={"If-None-Match": etag}, timeout=10).status_code == 304
        for server in (service, baseline):
            wrk(server.url, target, 1, connections)  # warm every worker's connection and caches
        rows = {"service": [], "baseline": [], "200": [], "304": []}
        compared = [("service", service, ()), ("baseline", baseline, ())]
        conditional = [("200", service, ()), ("304", service, (f"If-None-Match: {etag}",))]
        for r in range(rounds):
            order = compared + conditional if r % 2 == 0 else compared[::-1] + conditional[::-1]
            for name, server, headers in order:
                rows[name].append(wrk(server.url, target, seconds, connections, headers))
                print(f"round {r + 1} {line(name, rows[name][-1])}", flush=True)
    finally:
        service.stop()
        baseline.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return {name: median(results) for name, results in rows.items()} | {
        "service/baseline": ratio(rows["service"], rows["baseline"], "rps"),
        "304/200": ratio(rows["304"], rows["200"], "rps"),
        "p99 304/200": ratio(rows["304"], rows["200"], "p99_us"),
    }


def ratio(a, b, key):
    """The median over the rounds of a/b, each round's pair measured back to back."""
    return statistics.median(x[key] / y[key] for x, y in zip(a, b, strict=True))


def cpu(count=2000, repeats=5):
    """CPU time per GET of one job in this process through the Flask client (no network, no gunicorn, no
    wrk sharing the cores): the service's app, its 304, and the bare route; the best of `repeats` runs."""
    import importlib

    from image_webhook import create_app

    directory = Path(tempfile.mkdtemp(prefix="bench-api-cpu-"))
    url = f"sqlite:///{directory / 'jobs.sqlite3'}"
    migrate.upgrade(url)
    os.environ["DATABASE_URL"] = url  # bench.baseline_read_app reads it when imported
    baseline = importlib.import_module("bench.baseline_read_app").app.test_client()
    del os.environ["DATABASE_URL"]
    app = create_app({"APP_ENV": "development", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}, environ={})
    service = app.test_client()
    job = "/api/jobs/bench-cpu"
    service.put(job, json={"user_id": "u-1", "prompt": "Un chat"})
    service.post(URL, json=payload(COMPLETED, "bench-cpu"))
    assert service.get(job).get_json() == baseline.get(job).get_json()
    etag = service.get(job).headers["ETag"]

    def per_request(client, headers=None):
        best = float("inf")
        for _ in range(repeats):
            began = time.process_time()
            for _ in range(count):
                client.get(job, headers=headers)
            best = min(best, (time.process_time() - began) / count * 1e6)
        return best

    try:
        figures = {
            "service_us": per_request(service),
            "304_us": per_request(service, {"If-None-Match": etag}),
            "baseline_us": per_request(baseline),
        }
    finally:
        app.extensions["image_webhook"].stop()
        shutil.rmtree(directory, ignore_errors=True)
    figures["baseline/service"] = figures["baseline_us"] / figures["service_us"]
    print(
        f"\nCPU per GET in one process: service {figures['service_us']:.0f} µs, its 304 {figures['304_us']:.0f} µs, "
        f"bare route {figures['baseline_us']:.0f} µs: the service does {figures['baseline/service']:.2f}x the "
        "bare route's requests per CPU second",
        flush=True,
    )
    return figures


def median(results):
    return {key: statistics.median(r[key] for r in results) for key in ("rps", "p50_us", "p99_us")}


def generate(count):
    """`count` jobs oldest first over the last year: (job_id, status, progress, prompt, images, metadata, user,
    organization, created_at, updated_at, completed_at)."""
    rng = random.Random(13)
    first = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / count
    for n in range(count):
        status, user = STATUSES[rng.randrange(100)], rng.randrange(USERS)
        created = (first + step * n).isoformat(timespec="microseconds")
        done = status == "completed"
        user, organization = ("tiny", "tiny") if n % TINY == 7 else (user, user % ORGANIZATIONS)
        yield (
            f"job-{n:07d}",
            status,
            100.0 if done else None,
            "Un chat astronaute dans l'espace",
            IMAGES if done else None,
            METADATA if done else None,
            f"user-{user}",
            f"org-{organization}",
            created,
            created,
            created if status in ("completed", "failed") else None,
        )


def fill_sqlite(path, count):
    """A migrated SQLite file holding `count` jobs, written by executemany in one transaction; the listing
    indexes are dropped first and made again after (one sort each instead of a million random inserts)."""
    migrate.upgrade(f"sqlite:///{path}")
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA cache_size = -400000")  # 400 MB: the index pages stay in memory
    connection.execute("PRAGMA synchronous = OFF")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"
    ).fetchall()
    connection.execute("BEGIN")
    for name, _ in indexes:
        connection.execute(f"DROP INDEX {name}")
    names = ", ".join(COLUMNS + TIMES)
    connection.executemany(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * 11)})", generate(count))
    for _, sql in indexes:
        connection.execute(sql)
    connection.execute("COMMIT")
    connection.close()


def fill_postgres(url, count):
    """A migrated PostgreSQL database holding `count` jobs, written by COPY between dropping the listing indexes
    and making them again, then VACUUM ANALYZE (what autovacuum does on its own)."""
    import psycopg

    migrate.upgrade(url)
    copy_in = f"COPY jobs ({', '.join(COLUMNS + TIMES)}) FROM STDIN"
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        indexes = cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' AND indexdef NOT LIKE 'CREATE UNIQUE%'"
        ).fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        with cursor.copy(copy_in) as copy:
            for row in generate(count):
                copy.write_row(row)
        for _, sql in indexes:
            cursor.execute(sql)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE jobs")


class Captured:
    """A stand-in Database for jobs.page(): keeps the SQL and values it would run, answers no rows."""

    def __init__(self, dialect):
        self.dialect, self.statement = dialect, None

    def sql(self, text):
        return PostgresDatabase.sql(self, text) if self.dialect == "postgresql" else text  # type: ignore[arg-type]

    def read(self, op):
        return op(self)

    def execute(self, sql, values):
        self.statement = (sql, values)
        return self

    def fetchall(self):
        return []


def statement(dialect, filters, after):
    """The SQL and values the service runs for a page of 100 jobs."""
    captured = Captured(dialect)
    jobs.page(captured, filters, limit=100, after=after)
    return captured.statement


def queries(path, count):
    """name: (query string of the API, filters, keyset) for each filter, a deep cursor and combinations."""
    with sqlite3.connect(path) as connection:
        since = connection.execute("SELECT created_at FROM jobs ORDER BY id DESC LIMIT 1 OFFSET 2000").fetchone()[0]
        deep = connection.execute(
            "SELECT created_at, id FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?", (count // 2,)
        ).fetchone()
    deep = tuple(deep)
    cursor = base64.urlsafe_b64encode(json.dumps(list(deep)).encode()).decode().rstrip("=")
    return {
        "newest": ({}, {}, None),
        "status=completed": ({"status": "completed"}, {"status": "completed"}, None),
        "status=failed": ({"status": "failed"}, {"status": "failed"}, None),
        "user_id": ({"user_id": "user-42"}, {"user_id": "user-42"}, None),
        "organization_id": ({"organization_id": "org-7"}, {"organization_id": "org-7"}, None),
        "since (2,000 newest)": ({"since": since}, {"since": since}, None),
        "organization_id+status=failed": (
            {"organization_id": "org-7", "status": "failed"},
            {"organization_id": "org-7", "status": "failed"},
            None,
        ),
        f"organization_id ({count // TINY} jobs)+status=failed": (
            {"organization_id": "org-tiny", "status": "failed"},
            {"organization_id": "org-tiny", "status": "failed"},
            None,
        ),
        "user_id+since": ({"user_id": "user-42", "since": since}, {"user_id": "user-42", "since": since}, None),
        f"deep cursor (row {count // 2:,})": ({"cursor": cursor}, {}, deep),
        "status=completed+deep cursor": ({"status": "completed", "cursor": cursor}, {"status": "completed"}, deep),
        "status=failed+deep cursor": ({"status": "failed", "cursor": cursor}, {"status": "failed"}, deep),
    }


def sqlite_pages(count, samples):
    """Fill SQLite, serve it, time each query's page of 100 through the API, and give each one's plan."""
    directory = Path(tempfile.mkdtemp(prefix="bench-api-1m-"))
    path = directory / "jobs.sqlite3"
    began = time.monotonic()
    fill_sqlite(path, count)
    print(
        f"\nSQLite: {count:,} jobs written in {time.monotonic() - began:.1f} s ({path.stat().st_size / 1e6:.0f} MB)",
        flush=True,
    )
    cases = queries(path, count)
    server = start(directory, {"DATABASE_URL": f"sqlite:///{path}"})
    results = {}
    try:
        with requests.Session() as session, sqlite3.connect(path) as connection:
            for _ in range(40):  # every worker thread opens its connection and reads the schema once
                session.get(f"{server.url}/api/jobs", params={"limit": 100}, timeout=30).raise_for_status()
            for name, (query, filters, after) in cases.items():
                times = []
                for n in range(samples + 2):
                    began = time.perf_counter()
                    response = session.get(f"{server.url}/api/jobs", params={"limit": 100, **query}, timeout=30)
                    elapsed = (time.perf_counter() - began) * 1000
                    assert response.status_code == 200, response.text[:300]
                    times += [elapsed] if n >= 2 else []  # two to warm the worker's connection and cache
                sql, values = statement("sqlite", filters, after)
                plan = [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql, values)]
                results[name] = {
                    "jobs": len(response.json()["jobs"]),
                    "median_ms": statistics.median(times),
                    "max_ms": max(times),
                    "plan": plan,
                }
                print(
                    f"  {name:44} {results[name]['jobs']:3} jobs  median {results[name]['median_ms']:6.1f} ms  "
                    f"max {results[name]['max_ms']:6.1f} ms  | {' / '.join(plan)}",
                    flush=True,
                )
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return results, cases


def postgres_pages(count, cases):
    """Fill PostgreSQL and EXPLAIN ANALYZE the service's SQL of each query."""
    import psycopg

    postgres = PostgresServer().start()
    try:
        url = postgres.create_database("bench_api")
        began = time.monotonic()
        fill_postgres(url, count)
        print(f"\nPostgreSQL: {count:,} jobs written in {time.monotonic() - began:.1f} s", flush=True)
        results = {}
        with psycopg.connect(url, autocommit=True) as connection:
            for name, (_, filters, after) in cases.items():
                sql, values = statement("postgresql", filters, after)
                results[name] = explain(connection, name, sql, values)
                if after:  # the same page with the keyset as a row comparison
                    assert KEYSET in sql, sql
                    results[f"{name}, row comparison"] = explain(
                        connection, f"{name}, row comparison", sql.replace(KEYSET, ROW_KEYSET), values
                    )
    finally:
        postgres.stop()
        postgres.remove()
    return results


def explain(connection, name, sql, values):
    """EXPLAIN ANALYZE of one statement: its plan and execution time, printed on one line."""
    plan = [row[0] for row in connection.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, values)]
    executed = float(re.search(r"Execution Time: ([0-9.]+) ms", "\n".join(plan)).group(1))
    steps = " / ".join(p.strip() for p in plan if any(word in p for word in ("Index", "Scan", "Sort", "Filter")))
    print(f"  {name:44} execution {executed:7.2f} ms | {steps}", flush=True)
    return {"execution_ms": executed, "plan": plan}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--postgres-rows", type=int, default=1_000_000, help="0: skip PostgreSQL")
    parser.add_argument("--samples", type=int, default=15, help="timed pages per query")
    parser.add_argument("--json", type=Path, help="write the figures there too")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench-api installs it (apt-get install wrk)")
    began = time.monotonic()
    figures = {"reads": reads(options.rounds, options.seconds, options.connections)}
    r = figures["reads"]
    print(f"\nGET one job, medians of {options.rounds} rounds, {options.connections} connections:")
    for name in ("service", "baseline", "200", "304"):
        print(f"  {line(name, r[name])}")
    print(
        f"  service/baseline throughput {r['service/baseline']:.2f}x (goal ≥ 0.80); "
        f"304/200 throughput {r['304/200']:.2f}x, p99 {r['p99 304/200']:.2f}x",
        flush=True,
    )
    figures["cpu"] = cpu()
    figures["sqlite"], cases = sqlite_pages(options.rows, options.samples)
    if options.postgres_rows:
        figures["postgresql"] = postgres_pages(options.postgres_rows, cases)
    if options.json:
        options.json.write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    print(f"\nbench-api finished in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
