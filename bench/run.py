"""make bench: the service against a bare Flask baseline on the same gunicorn settings, in one run.

Both are started with the project's gunicorn.conf.py on loopback and driven in turn (A B, then B A, ...)
by wrk at a fixed concurrency, a unique job_id per request. Prints per round requests/s, p50 and p99,
then the median ratios service/baseline; sweeps the concurrency for the plot; measures the store.
`--workers` instead compares worker classes for the service. Everything stops by itself.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import ROOT, GunicornServer, RedisServer

RESULTS = ROOT / "bench" / "results"
LOAD = ROOT / "bench" / "load.lua"
SECRET = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
BASELINE = "bench.baseline_app:app"
# scenario: (wrk MODE, service environment, expected status)
SCENARIOS = {
    "completed (dev)": ("completed", "dev", 200),
    "completed (prod, secret)": ("completed", "prod", 200),
    "completed (dev, LOG_LEVEL=WARNING)": ("completed", "quiet", 200),
    "duplicates": ("duplicate", "dev", 200),
    "intermediate": ("progress", "dev", 200),
    "invalid (400)": ("invalid", "dev", 400),
}
ENVIRONMENTS = {
    "dev": {"APP_ENV": "development"},
    "prod": {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET},
    "quiet": {"APP_ENV": "development", "LOG_LEVEL": "WARNING"},
}  # the cost of the spec's log lines


def wrk(url, mode, seconds, connections, secret=None):
    env = {**os.environ, "MODE": mode, "SECRET": secret or ""}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LOAD), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 30,
    ).stdout
    result = json.loads(re.search(r"RESULT (\{.*\})", out).group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def start(app=None, env="dev", args=()):
    return GunicornServer(tempfile.mkdtemp(prefix="bench-"), ENVIRONMENTS[env], app=app, args=args).start()


def warm(server, secret=None):
    wrk(server.url, "completed", 1, 4, secret)


def compare(rounds, seconds, connections):
    """Each scenario, service (A) and baseline (B) in turn, the order swapped every round."""
    servers = {"dev": start(), "prod": start(env="prod"), "quiet": start(env="quiet"), "base": start(BASELINE)}
    for name, server in servers.items():
        warm(server, SECRET if name == "prod" else None)
    rows = {name: [] for name in SCENARIOS}
    try:
        for r in range(rounds):
            for name, (mode, env, expected) in SCENARIOS.items():
                secret = SECRET if env == "prod" else None
                order = [("service", servers[env]), ("baseline", servers["base"])]
                measured = {}
                for who, server in order if r % 2 == 0 else order[::-1]:
                    result = wrk(server.url, mode, seconds, connections, secret)
                    wrong = result["non2xx"] if expected == 200 else result["requests"] - result["non2xx"]
                    if who == "service" and (wrong or result["errors"]):
                        raise SystemExit(f"{name}: {wrong} unexpected statuses, {result['errors']} errors")
                    measured[who] = result
                rows[name].append(measured)
                s, b = measured["service"], measured["baseline"]
                print(
                    f"round {r + 1} {name:34} service {s['rps']:7.0f} req/s p50 {s['p50_us'] / 1000:5.2f} ms "
                    f"p99 {s['p99_us'] / 1000:6.2f} ms | baseline {b['rps']:7.0f} req/s "
                    f"p50 {b['p50_us'] / 1000:5.2f} ms p99 {b['p99_us'] / 1000:6.2f} ms",
                    flush=True,
                )
        times = processing_times(servers["dev"].output())
    finally:
        for server in servers.values():
            server.stop()
    return rows, statistics.median(times)


def ratios(rows):
    out = {}
    for name, measured in rows.items():
        out[name] = {
            "throughput": statistics.median(m["service"]["rps"] / m["baseline"]["rps"] for m in measured),
            "p99": statistics.median(m["service"]["p99_us"] / m["baseline"]["p99_us"] for m in measured),
            "service_rps": statistics.median(m["service"]["rps"] for m in measured),
            "baseline_rps": statistics.median(m["baseline"]["rps"] for m in measured),
        }
    return out


def sweep(levels, seconds):
    """Requests/s and p99 of unique completed (dev) for service and baseline at each concurrency."""
    servers = {"service": start(), "baseline": start(BASELINE)}
    points = {who: [] for who in servers}
    times_at_1 = []
    try:
        for server in servers.values():
            warm(server)
        for level in levels:
            for who, server in servers.items():
                before = len(processing_times(server.output())) if who == "service" else 0
                result = wrk(server.url, "completed", seconds, level)
                points[who].append({"connections": level, "rps": result["rps"], "p99_ms": result["p99_us"] / 1000})
                if who == "service" and level == 1:
                    times_at_1 = processing_times(server.output())[before:]
                print(
                    f"concurrency {level:3} {who:8} {result['rps']:7.0f} req/s p99 {result['p99_us'] / 1000:6.2f} ms",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    points["median_processing_time_ms_at_1"] = statistics.median(times_at_1)
    return points


def processing_times(output):
    return [float(m) for m in re.findall(r"Traitement terminé en ([0-9.]+)ms", output)]


def plot(points, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for who, style in (("service", "o-"), ("baseline", "s--")):
        xs = [p["connections"] for p in points[who]]
        left.plot(xs, [p["rps"] for p in points[who]], style, label=who)
        right.plot(xs, [p["p99_ms"] for p in points[who]], style, label=who)
    for axis, title in ((left, "requests/s (higher is better)"), (right, "p99 latency, ms (lower is better)")):
        axis.set_xscale("log", base=2)
        axis.set_ylim(bottom=0)
        axis.set_xticks(
            [p["connections"] for p in points["service"]], [str(p["connections"]) for p in points["service"]]
        )
        axis.set_xlabel("concurrent connections (wrk)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    fig.suptitle("unique completed notifications, development: service vs bare Flask, same gunicorn settings")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def workers(seconds, rounds, connections):
    """The service under each worker configuration (one worker process: the store is in-process)."""
    configs = {"sync": ["--worker-class", "sync"]}
    configs.update({f"gthread {n} threads": ["--worker-class", "gthread", "--threads", str(n)] for n in (2, 4, 8)})
    results = {name: [] for name in configs}
    for r in range(rounds):
        for name, args in configs.items() if r % 2 == 0 else reversed(configs.items()):
            for app in (None, BASELINE):
                server = start(app, args=args)
                try:
                    warm(server)
                    result = wrk(server.url, "completed", seconds, connections)
                finally:
                    server.stop()
                results[name].append((app or "service", result))
                print(
                    f"round {r + 1} {name:20} {app or 'service':28} {result['rps']:7.0f} req/s "
                    f"p50 {result['p50_us'] / 1000:5.2f} ms p99 {result['p99_us'] / 1000:6.2f} ms",
                    flush=True,
                )
    print("\nmedians (service | baseline):")
    for name, measured in results.items():

        def med(who, key, measured=measured):
            return statistics.median(m[key] for w, m in measured if w == who)

        print(
            f"  {name:20} {med('service', 'rps'):7.0f} req/s p99 {med('service', 'p99_us') / 1000:6.2f} ms | "
            f"{med(BASELINE, 'rps'):7.0f} req/s p99 {med(BASELINE, 'p99_us') / 1000:6.2f} ms"
        )


def stores(seconds, rounds, connections):
    """Memory store with 1 worker against Redis with 2 x cores + 1 workers, same load, in turn."""
    if not shutil.which("redis-server"):
        raise SystemExit("redis-server is missing: make bench-redis installs it (apt-get install redis-server)")
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-"))).start()
    ENVIRONMENTS["redis"] = {"APP_ENV": "development", "REDIS_URL": redis.url}
    servers = {"memory, 1 worker": start(), f"redis, {2 * (os.cpu_count() or 1) + 1} workers": start(env="redis")}
    results = {name: [] for name in servers}
    try:
        for server in servers.values():
            warm(server)
        for r in range(rounds):
            for name, server in servers.items() if r % 2 == 0 else reversed(servers.items()):
                result = wrk(server.url, "completed", seconds, connections)
                if result["non2xx"] or result["errors"]:
                    raise SystemExit(f"{name}: {result['non2xx']} unexpected statuses, {result['errors']} errors")
                results[name].append(result)
                print(
                    f"round {r + 1} {name:22} {result['rps']:7.0f} req/s p50 {result['p50_us'] / 1000:5.2f} ms "
                    f"p99 {result['p99_us'] / 1000:6.2f} ms",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
        redis.stop()
    medians = {name: statistics.median(r["rps"] for r in rs) for name, rs in results.items()}
    memory, shared = medians.values()
    print(
        "\nmedians: "
        + ", ".join(f"{name} {rps:.0f} req/s" for name, rps in medians.items())
        + f"; redis/memory {shared / memory:.2f}x"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", action="store_true", help="compare worker classes instead")
    parser.add_argument("--stores", action="store_true", help="compare memory (1 worker) and Redis (N workers)")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: make bench installs it (apt-get install wrk)")
    if options.workers:
        return workers(options.seconds, options.rounds, options.connections)
    if options.stores:
        return stores(options.seconds, options.rounds, options.connections)
    started = time.monotonic()
    rows, median_ms = compare(options.rounds, options.seconds, options.connections)
    summary = ratios(rows)
    print(f"\nmedian ratios service/baseline ({options.rounds} rounds, {options.connections} connections):")
    for name, r in summary.items():
        print(
            f"  {name:34} throughput {r['throughput']:.2f}x  p99 {r['p99']:.2f}x  "
            f"({r['service_rps']:.0f} vs {r['baseline_rps']:.0f} req/s)"
        )
    print(f"  median processing_time_ms, 1-image completed: {median_ms:.3f} ms\n")
    points = sweep([1, 4, 16, 64], options.seconds)
    RESULTS.mkdir(exist_ok=True)
    at_1 = points["median_processing_time_ms_at_1"]
    print(f"median processing_time_ms, 1-image completed, one connection: {at_1:.3f} ms")
    plot(points, RESULTS / "concurrency.png")
    print(f"\nplot: {RESULTS / 'concurrency.png'}\n")
    subprocess.run([sys.executable, "-m", "bench.store"], check=True, cwd=ROOT)
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {"ratios": summary, "median_processing_time_ms": median_ms, "rounds": rows, "sweep": points}, indent=1
        )
    )
    print(f"\nbench finished in {time.monotonic() - started:.0f} s; figures in {RESULTS / 'latest.json'}")


if __name__ == "__main__":
    main()
