"""make bench-images: what copying the images costs, in one run on loopback (BENCHMARKS.md, issue 19).

1. webhook: unique completed notifications with the copiers on and busy with the run's own images (a loopback
   source on localhost:9006 serving a 1024 x 1024 PNG) against the copiers off, A B then B A each round;
2. copies: images per second of two `images work` processes against a bare loop of the same steps (fetch,
   SHA-256, Pillow's full decode, WebP thumbnail, an atomic file write) in one process per core;
3. serving: GET of a stored image against a bare Flask send_file of the same file, on the same workers.
"""

import argparse
import hashlib
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from multiprocessing import Pool
from pathlib import Path

import requests
from PIL import Image

from bench import harness
from tests.image_source import ImageSource, image_bytes
from tests.payloads import COMPLETED, URL, payload
from tests.servers import ROOT, GunicornServer

GET = ROOT / "bench" / "get.lua"
START_TIMEOUT = 90
DEV = {"APP_ENV": "development"}


def catch_all_source(data):
    """The spec's backend on localhost:9006, answering every path with `data`."""
    source = ImageSource(port=9006)
    source.files = _Every(data)
    return source.start()


class _Every(dict):
    def __init__(self, data):
        super().__init__()
        self.data = data

    def __contains__(self, path):
        return True

    def __getitem__(self, path):
        return self.data, "image/png"


def ratio_rounds(measure, names, rounds):
    """Medians over the rounds of each name's result divided by the first name's, A B then B A."""
    results = {name: [] for name in names}
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            results[name].append(measure(name))
    return results


def webhook_part(rounds, seconds):
    source = catch_all_source(image_bytes("PNG", (1024, 1024)))
    servers = {
        "copies off": harness.server(env={**DEV, "IMAGE_COPY_CONCURRENCY": "0"}),
        "copies on": harness.server(env=DEV),
    }
    try:
        harness.start_all(list(servers.values()))
        results = ratio_rounds(
            lambda name: harness.wrk(servers[name].url, "completed", seconds, 16), list(servers), rounds
        )
        stored = _count(servers["copies on"], "stored")
    finally:
        harness.stop_all(list(servers.values()))
        source.stop()
    off, on = results["copies off"], results["copies on"]
    return {
        "throughput": statistics.median(b["rps"] / a["rps"] for a, b in zip(off, on, strict=True)),
        "p99": statistics.median(b["p99_us"] / a["p99_us"] for a, b in zip(off, on, strict=True)),
        "rps_off": statistics.median(r["rps"] for r in off),
        "rps_on": statistics.median(r["rps"] for r in on),
        "stored_during_run": stored,
    }


def _count(server, state):
    path = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM image_copies WHERE state = ?", (state,)).fetchone()[0]


def bare_copy(job):
    """The same steps as a copier, in a bare loop: fetch, hash, decode whole, thumbnail, write atomically."""
    url, directory, count = job
    for n in range(count):
        data = urllib.request.urlopen(url, timeout=60).read()
        digest = hashlib.sha256(data).hexdigest()
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP", "GIF"])
        image.load()
        thumbnail = image.copy()
        thumbnail.thumbnail((256, 256))
        out = io.BytesIO()
        thumbnail.save(out, "WEBP")
        stem = f"{digest}-{os.getpid()}-{n}"
        for name, body in ((f"{stem}.png", data), (f"{stem}.thumb.webp", out.getvalue())):
            temporary = Path(directory) / f".{name}.tmp"
            temporary.write_bytes(body)
            os.replace(temporary, Path(directory) / name)


def copies_part(count, processes):
    data = image_bytes("PNG", (1024, 1024))
    source = catch_all_source(data)
    scratch = Path(tempfile.mkdtemp(prefix="bench-copies-"))
    try:
        started = time.perf_counter()
        with Pool(processes) as pool:
            pool.map(bare_copy, [(source.url("/x.png"), scratch, count // processes)] * processes)
        bare = count / (time.perf_counter() - started)
        service = _service_copies(scratch, count, processes)
    finally:
        source.stop()
    return {"ratio": service / bare, "service_per_s": service, "bare_per_s": bare}


def _service_copies(scratch, count, processes, concurrency=2):
    """Images per second of `processes` `images work` commands (IMAGE_COPY_CONCURRENCY's default: 2 copiers
    each), from the first image stored to the last: the rate, without the first look for due tasks (up to
    POLL, 1 s), which is latency, not throughput."""
    database = scratch / "jobs.sqlite3"
    env = {**os.environ, **DEV, "DATABASE_URL": f"sqlite:///{database}", "IMAGE_STORE": f"file://{scratch / 'store'}"}
    with GunicornServer(scratch, {**env, "IMAGE_COPY_CONCURRENCY": "0"}) as server:
        for n in range(count):
            assert requests.post(server.url + URL, json=payload(COMPLETED, f"copy-{n}"), timeout=10).ok
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE image_copies SET due_at = '9999-01-01'")
    command = [sys.executable, "-m", "flask", "--app", "app", "images", "work", "--concurrency", str(concurrency)]
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL) for _ in range(processes)]
    try:
        time.sleep(5)  # booted and idle
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE image_copies SET due_at = '2000-01-01'")
        started = None
        while True:
            with sqlite3.connect(database) as connection:
                done = connection.execute("SELECT COUNT(*) FROM image_copies WHERE state = 'stored'").fetchone()[0]
            if done and started is None:
                started, first = time.perf_counter(), done
            if done == count:
                return (count - first) / (time.perf_counter() - started)
            time.sleep(0.005)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)


def serving_part(rounds, seconds):
    data = image_bytes("PNG", (1024, 1024))
    source = catch_all_source(data)
    directory = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    service = GunicornServer(directory, {**DEV, "IMAGE_STORE": f"file://{directory / 'store'}"})
    try:
        service.start(timeout=START_TIMEOUT)
        requests.post(service.url + URL, json=payload(COMPLETED, "served"), timeout=10)
        deadline = time.monotonic() + 30
        while requests.get(service.url + "/api/jobs/served/images/0", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the image was not copied"
            time.sleep(0.1)
        stored = next((directory / "store").rglob("*.png"))
        bare = GunicornServer(directory, {**DEV, "BENCH_FILE": str(stored)}, app="bench.baseline_send_file_app:app")
        bare.start(timeout=START_TIMEOUT)
        servers = {"send_file": bare, "service": service}

        def measure(name):
            env = {"TARGET": "/api/jobs/served/images/0", "HEADERS": ""}
            return harness.wrk(servers[name].url, None, seconds, 16, script=GET, env=env)

        results = ratio_rounds(measure, list(servers), rounds)
    finally:
        harness.stop_all([service] + ([bare] if "bare" in locals() else []))
        source.stop()
    return {
        "throughput": statistics.median(
            b["rps"] / a["rps"] for a, b in zip(results["send_file"], results["service"], strict=True)
        ),
        "rps_send_file": statistics.median(r["rps"] for r in results["send_file"]),
        "rps_service": statistics.median(r["rps"] for r in results["service"]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--images", type=int, default=600)
    options = parser.parse_args()
    print("webhook, copies on / off:", webhook_part(options.rounds, options.seconds), flush=True)
    print("copies, service / bare loop:", copies_part(options.images, os.cpu_count() or 2), flush=True)
    print("serving, service / send_file:", serving_part(options.rounds, options.seconds), flush=True)


if __name__ == "__main__":
    main()
