"""A bounded soak on loopback: a fixed number of mixed requests over about a minute against the real
gunicorn; checks that no status is unexpected and that the worker's memory stays bounded.

Usage: make soak   (REQUESTS=30000 SECONDS=60 RSS_BOUND_MB=25 to change the figures)
"""

import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

from tests.payloads import COMPLETED, PROGRESS, payload
from tests.servers import GunicornServer

REQUESTS = int(os.environ.get("REQUESTS", 30_000))
SECONDS = float(os.environ.get("SECONDS", 60))
RSS_BOUND_MB = float(os.environ.get("RSS_BOUND_MB", 25))
THREADS = 8
WARM_UP = 0.1  # the first tenth of the requests warms the worker up
KINDS = [("new", 200)] * 6 + [("duplicate", 200)] * 2 + [("progress", 200), ("invalid", 400)]


def worker_rss_mb(master_pid):
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    status = Path(f"/proc/{children[0]}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


def main():
    counts, unexpected = Counter(), Counter()
    lock = threading.Lock()
    sent = iter(range(REQUESTS))
    start = time.monotonic()
    warm_rss = []
    with GunicornServer(tempfile.mkdtemp(), {"APP_ENV": "development"}) as server:
        pid = server.process.pid

        def run(seed):
            rng = random.Random(seed)
            session = requests.Session()
            for i in sent:
                delay = start + i * SECONDS / REQUESTS - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                kind, expected = rng.choice(KINDS)
                job = f"soak-{rng.randrange(max(1, i // 2))}" if kind == "duplicate" else f"soak-{i}"
                body = {
                    "new": payload(COMPLETED, job),
                    "duplicate": payload(COMPLETED, job),
                    "progress": payload(PROGRESS, job),
                    "invalid": payload(COMPLETED, job, data={}),
                }[kind]
                status = session.post(server.url + "/api/webhooks/image-completion", json=body, timeout=30).status_code
                with lock:
                    counts[kind] += 1
                    if status != expected:
                        unexpected[(kind, status)] += 1
                    if i == int(REQUESTS * WARM_UP):
                        warm_rss.append(worker_rss_mb(pid))

        threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end_rss = worker_rss_mb(pid)
    elapsed = time.monotonic() - start
    growth = end_rss - warm_rss[0]
    print(f"requests: {sum(counts.values())} in {elapsed:.1f} s ({dict(counts)})")
    print(f"unexpected statuses: {sum(unexpected.values())} {dict(unexpected)}")
    print(
        f"worker RSS: {warm_rss[0]:.1f} MiB after warm-up, {end_rss:.1f} MiB at the end "
        f"(+{growth:.1f} MiB, bound +{RSS_BOUND_MB:.0f} MiB)"
    )
    ok = not unexpected and growth <= RSS_BOUND_MB
    print("soak: OK" if ok else "soak: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
