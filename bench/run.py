"""make bench: the service's configurations against bare Flask baselines on the same gunicorn settings, one run.

Every server is started with the project's gunicorn.conf.py on loopback and they are measured in turn by
wrk at a fixed concurrency (A B C ..., then ... C B A: the order reversed every round); ratios are taken
within a round, then their median (and range) over the rounds. Parts (--parts):
- ratios: the stateless mode (DATABASE_URL="", one worker) against the bare route (issues 10 and 11);
- database: the default configuration (SQLite, 2 x cores + 1 workers) against a bare route committing one
  row with the same pragmas, a bare route on the same workers, the stateless mode, the group commit at
  MAX_BATCH=1, and PostgreSQL (fsync on) with the same workers (issue 12);
- workers: the stateless service under plain gthread against the head-reading worker, tail included;
- peers: the default configuration against the specification's contract in FastAPI + uvicorn and in plain Node
  `http` (bench/peer_fastapi.py, bench/peer_node.js), the bare route on 1 x 4 and 5 x 4 and the stateless mode,
  wrk 2 threads x 16 connections (issue 21);
- store: the memory store's bytes per job and lock holds (bench/store.py);
- history (with --against REV,...): the stateless mode now, the same mode at each earlier commit (served from
  `git archive REV` with that commit's own gunicorn.conf.py) and the bare route, in the same rounds: "no slower
  than before" measured on the same machine at the same moment, not against figures of another day.
Everything stops by itself; the figures go to bench/results/latest.json.
"""

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import harness, report
from bench.harness import SECRET
from tests.payloads import COMPLETED, payload
from tests.servers import DEFAULT_WORKERS, ROOT, PostgresServer, RedisServer

RESULTS = ROOT / "bench" / "results"
BARE5 = report.BARE5  # the bare route on the default configuration's workers
REDIS = report.REDIS  # the stateless mode with the Redis store, as many workers as the default
FASTAPI, NODE = report.FASTAPI, report.NODE  # the peers: bench/peer_fastapi.py, bench/peer_node.js
PEER_THREADS = 2  # wrk threads in the peers part: one thread alone can be what limits a fast Node peer
STATELESS = {"APP_ENV": "development", "DATABASE_URL": ""}
# name: (app, environment, gunicorn arguments, baseline?); the default configuration is DATABASE_URL unset
SERVERS = {
    "stateless": (None, STATELESS, (), False),
    "stateless, prod": (None, {**STATELESS, "APP_ENV": "production", "WEBHOOK_SECRET": SECRET}, (), False),
    "stateless, WARNING": (None, {**STATELESS, "LOG_LEVEL": "WARNING"}, (), False),
    "stateless, gthread": (None, STATELESS, ("--worker-class", "gthread"), False),
    "bare": ("bench.baseline_app:app", STATELESS, (), True),
    BARE5: ("bench.baseline_app:app", {"APP_ENV": "development"}, (), True),
    "default": (None, {"APP_ENV": "development"}, (), False),
    "default, 1 worker": (None, {"APP_ENV": "development", "WEB_CONCURRENCY": "1"}, (), False),  # one writer
    "bare sqlite": ("bench.baseline_sqlite_app:app", {"APP_ENV": "development"}, (), True),
    "default, MAX_BATCH=1": (None, {"APP_ENV": "development"}, (), False),
    "postgresql": (None, {"APP_ENV": "development"}, (), False),
    REDIS: (None, {**STATELESS, "WEB_CONCURRENCY": str(DEFAULT_WORKERS)}, (), False),
    # the default without image copiers: the bench's image URLs lead nowhere, so its copies fail and are retried
    "default, copies off": (None, {"APP_ENV": "development", "IMAGE_COPY_CONCURRENCY": "0"}, (), False),
    # the peers (issue 21): what a user would pick instead, each one process holding its window in memory
    report.FASTAPI: ("peer:fastapi", {}, (), False),
    report.NODE: ("peer:node", {}, (), False),
}
# part: [(group, wrk mode, connections, silent sockets held, secret, members in order)]
PARTS = {
    "ratios": [
        ("completed (dev)", "completed", 8, 0, None, ["stateless", "bare"]),
        ("completed (prod, secret)", "completed", 8, 0, SECRET, ["stateless, prod", "bare"]),
        ("completed (dev, LOG_LEVEL=WARNING)", "completed", 8, 0, None, ["stateless, WARNING", "bare"]),
        ("duplicates", "duplicate", 8, 0, None, ["stateless", "bare"]),
        ("intermediate", "progress", 8, 0, None, ["stateless", "bare"]),
        ("invalid (400)", "invalid", 8, 0, None, ["stateless", "bare"]),
    ],
    "database": [
        (
            "db: completed",
            "completed",
            8,
            0,
            None,
            ["default", "bare sqlite", "stateless", "default, MAX_BATCH=1", "default, 1 worker", "postgresql"],
        ),
        ("db: duplicates", "duplicate", 8, 0, None, ["default", BARE5, "stateless", "default, 1 worker", "postgresql"]),
        (
            "db: progress",
            "progress",
            8,
            0,
            None,
            ["default", "stateless", "default, MAX_BATCH=1", "default, 1 worker", "postgresql"],
        ),
    ],
    "workers": [
        ("workers: completed, 8 connections", "completed", 8, 0, None, ["stateless", "stateless, gthread"]),
        ("workers: completed, 64 connections", "completed", 64, 0, None, ["stateless", "stateless, gthread"]),
        (
            "workers: completed, 8 connections + 16 silent",
            "completed",
            8,
            16,
            None,
            ["stateless", "stateless, gthread"],
        ),
    ],
    # issue 21: the default configuration against its peers and the bare routes, wrk 2 threads x 16 connections
    "peers": [
        (
            "peers: completed",
            "completed",
            16,
            0,
            None,
            ["default", "default, copies off", FASTAPI, NODE, BARE5, "bare", "stateless"],
        ),
        ("peers: progress", "progress", 16, 0, None, ["default", "default, copies off", FASTAPI, NODE, "stateless"]),
        ("peers: duplicates", "duplicate", 16, 0, None, ["default", FASTAPI, NODE, "stateless"]),
    ],
    "redis": [("redis: completed, 16 connections", "completed", 16, 0, None, ["stateless", REDIS])],  # make bench-redis
}


# the ratios part's scenarios (group, wrk mode, secret, the service's configuration), for the history part
HISTORY = [
    ("completed (dev)", "completed", None, "stateless"),
    ("completed (prod, secret)", "completed", SECRET, "stateless, prod"),
    ("completed (dev, LOG_LEVEL=WARNING)", "completed", None, "stateless, WARNING"),
    ("duplicates", "duplicate", None, "stateless"),
    ("intermediate", "progress", None, "stateless"),
    ("invalid (400)", "invalid", None, "stateless"),
]


def history(revisions, scratch):
    """The `history` part's groups: each scenario's configuration now, the same configuration at each earlier
    commit (checked out under `scratch`, served with its own gunicorn.conf.py) and the bare route."""
    roots = {}
    for revision in revisions:
        roots[revision] = root = Path(scratch) / f"at-{revision}"
        root.mkdir()
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True)
        if archive.returncode:  # a shallow clone, or a mistyped commit
            raise SystemExit(f"--against {revision}: {archive.stderr.decode(errors='replace').strip()}")
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    groups = []
    for group, mode, secret, now in HISTORY:
        members = [now]
        for revision, root in roots.items():
            name = f"{now} @{revision}"
            _, env, args, _ = SERVERS[now]
            SERVERS[name] = (None, {**env, "PYTHONPATH": str(root)}, args, False)
            CONFIGS[name] = root / "gunicorn.conf.py"
            members.append(name)
        if now == "stateless" and mode != "invalid":  # and today's default (SQLite, 2 x cores + 1 workers)
            members.append("default")
        groups.append((f"history: {group}", mode, 8, 0, secret, [*members, "bare"]))
    return groups


CONFIGS = {}  # server name: the gunicorn.conf.py it is started with, when not the checkout's


def start_servers(names, scratch):
    """The named servers, all started, and the databases they need (PostgreSQL with fsync on, Redis)."""
    made, backends = {}, []
    try:
        for name in names:
            app, env, args, _ = SERVERS[name]
            config = CONFIGS.get(name)
            if name == "postgresql":
                backends.append(PostgresServer(fsync=True).start())
                env = {**env, "DATABASE_URL": backends[-1].create_database("bench")}
            if name == REDIS:
                backends.append(RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-"))).start())
                env = {**env, "REDIS_URL": backends[-1].url}
            if name == "default, MAX_BATCH=1":
                config = harness.variant_config(scratch, **{"image_webhook.storage.database.writer": {"MAX_BATCH": 1}})
            if app and app.startswith("peer:"):
                made[name] = harness.peer(app.removeprefix("peer:"), env)
            else:
                made[name] = harness.server(app, env, args, config)
        harness.start_all(made.values())
    except BaseException:
        stop(backends)
        raise
    return made, backends


def stop(backends):
    for backend in backends:
        backend.stop()
        if isinstance(backend, PostgresServer):
            backend.remove()


def measure(groups, servers, rounds, seconds):
    """Every group's members in turn, `rounds` times; each result carries its server and round."""
    results = {group[0]: {member: [] for member in group[5]} for group in groups}
    problems = []
    peers = {group[0] for group in PARTS["peers"]}
    for r in range(rounds):
        for group, mode, connections, silent, secret, members in groups:
            threads = PEER_THREADS if group in peers else 1
            for member in members if r % 2 == 0 else members[::-1]:
                result = one(servers[member], member, mode, connections, silent, secret, seconds, threads)
                results[group][member].append(result)
                wrong = result["wrong"] + result["errors"]
                if wrong and not SERVERS[member][3] and not silent:
                    problems.append(
                        f"round {r + 1} {group} {member}: {result['wrong']} wrong statuses, "
                        f"{result['errors']} socket errors"
                    )
                print(f"round {r + 1} {group:46} {member:22} {report.line(result)}", flush=True)
    return results, problems


def one(server, member, mode, connections, silent, secret, seconds, threads=1):
    """One wrk run (a duplicate's job completed once first; `silent` sockets held open meanwhile)."""
    job, offset = None, server.log_path.stat().st_size
    if mode == "duplicate":
        job = f"bench-duplicate-{uuid.uuid4().hex}"
        headers = {"X-Webhook-Secret": secret} if secret else {}
        first = server.post(json=payload(COMPLETED, job), headers=headers, timeout=30)
        if first.status_code != 200:
            raise SystemExit(f"{member}: the first delivery of {job} got {first.status_code}: {first.text}")
    with harness.silent_connections(server.port, silent) if silent else contextlib.nullcontext(0) as held:
        result = harness.wrk(server.url, mode, seconds, connections, secret, job, threads=threads)
    result["silent_held"] = held
    expected = 400 if mode == "invalid" else 200
    result["wrong"] = result["non2xx"] if expected == 200 else result["requests"] - result["non2xx"]
    if job and not SERVERS[member][3]:
        with open(server.log_path, "rb") as log:
            log.seek(offset)
            sources = harness.duplicate_sources(log.read().decode("utf-8", "replace"), job)
        result["fast_path"], result["from_database"] = sources or (None, None)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--parts", default="ratios,database,workers,peers,store", help="also: redis (Redis, N workers)")
    parser.add_argument("--against", default="", help="earlier commits for the history part, comma-separated")
    options = parser.parse_args()
    parts = options.parts.split(",")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench installs it (apt-get install wrk)")
    if "peers" in parts and not shutil.which("node"):
        raise SystemExit("node is missing for the Node peer: make bench installs it (apt-get install nodejs)")
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="bench-run-")
    groups = [group for part in PARTS if part in parts for group in PARTS[part]]
    if options.against:
        groups += history(options.against.split(","), scratch)
    names = list(dict.fromkeys(member for group in groups for member in group[5]))
    servers, backends = start_servers(names, scratch) if names else ({}, [])
    print(f"{len(servers)} servers up in {time.monotonic() - started:.0f} s", flush=True)
    try:
        for name, one_server in servers.items():  # warm up: imports, connections, first pages of the database
            harness.wrk(one_server.url, "completed", 1, 8, SECRET if "prod" in name else None)
        results, problems = measure(groups, servers, options.rounds, options.seconds)
        times = {
            name: harness.processing_times(servers[name].output())
            for name in ("stateless", "default")
            if name in servers
        }
    finally:
        harness.stop_all(servers.values())
        stop(backends)
    for one_server in servers.values():  # a finished run's logs and databases (a failed one keeps them)
        shutil.rmtree(one_server.cwd, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    summary = report.summarize(results, times, options)
    if "store" in parts:
        store = subprocess.run(
            [sys.executable, "-m", "bench.store"], check=True, cwd=ROOT, capture_output=True, text=True
        ).stdout
        print(store, end="")
        summary["store"] = store.splitlines()
    summary["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()}
    summary["problems"] = problems
    summary["seconds_total"] = round(time.monotonic() - started)
    RESULTS.mkdir(exist_ok=True)
    report.save(summary, results, RESULTS)
    print(f"\nbench finished in {summary['seconds_total']} s; figures in {RESULTS / 'latest.json'}")
    if problems:
        print("unexpected answers:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
