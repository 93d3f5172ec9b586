"""The shared Redis store, end to end: gunicorn instances with several workers against a real redis-server."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.payloads import COMPLETED, payload
from tests.servers import GunicornServer, RedisServer, eventually, require, run_to_exit

DUPLICATE = {"success": True, "message": "Job déjà traité"}


@pytest.fixture
def redis_server(tmp_path):
    require("redis-server")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def shared(redis_server, **extra):
    return {"APP_ENV": "development", "REDIS_URL": redis_server.url, "WEB_CONCURRENCY": "3", **extra}


def test_memory_store_refuses_several_workers(tmp_path):
    """WEB_CONCURRENCY above 1 with the memory store stops gunicorn, naming the variable."""
    code, output = run_to_exit(tmp_path, {"APP_ENV": "development", "WEB_CONCURRENCY": "2"})
    assert code != 0 and "WEB_CONCURRENCY" in output and "IDEMPOTENCE_BACKEND=redis" in output


def test_two_instances_process_each_job_once(redis_server, tmp_path):
    """Two gunicorn instances of 3 workers on one Redis: 64 simultaneous posts of one job give one
    processing; 2,000 distinct jobs spread over both are each processed once."""
    with GunicornServer(tmp_path, shared(redis_server)) as a, GunicornServer(tmp_path, shared(redis_server)) as b:
        assert a.wait_for("Booting worker", 3).count("Booting worker") == 3
        barrier = threading.Barrier(64)
        servers = [a, b] * 32

        def race(server):
            barrier.wait()
            return server.post(payload(COMPLETED, "shared-race")).json()

        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(race, servers))
        assert sum(answer.get("images_count") == 1 for answer in answers) == 1
        assert sum(answer == DUPLICATE for answer in answers) == 63

        sessions = threading.local()

        def post(job):
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            server = a if job % 2 else b
            return sessions.s.post(server.url + "/api/webhooks/image-completion",
                                   json=payload(COMPLETED, f"shared-{job}"), timeout=30).json()

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(post, range(2000)))
        assert sum(answer.get("images_count") == 1 for answer in answers) == 2000
        logged = eventually(lambda: a.output().count("Génération réussie") + b.output().count("Génération réussie"), 2001)
        assert logged == 2001  # the 2,000 and the race's one


def test_a_job_is_processed_again_after_the_window(redis_server, tmp_path):
    """With a 2 s window in Redis, the same job is a duplicate within it and processed again after."""
    with GunicornServer(tmp_path, shared(redis_server, IDEMPOTENCE_WINDOW="2")) as server:
        body = payload(COMPLETED, "expiring")
        assert server.post(body).json()["images_count"] == 1
        assert server.post(body).json() == DUPLICATE
        time.sleep(2.2)  # Redis's own clock expires the key: nothing to drive from here
        assert server.post(body).json()["images_count"] == 1


def test_redis_down_is_a_503_and_the_service_recovers(redis_server, tmp_path):
    """Redis stopped: 503 with Retry-After, /readyz 503, nothing processed twice; Redis back on the same
    port: 200 again without restarting the service."""
    with GunicornServer(tmp_path, shared(redis_server, REDIS_TIMEOUT="0.5")) as server:
        assert server.post(payload(COMPLETED, "before-outage")).status_code == 200
        redis_server.stop()
        during = [server.post(payload(COMPLETED, f"outage-{i % 3}")) for i in range(9)]
        assert {r.status_code for r in during} == {503}
        assert all(r.headers["Retry-After"] == "5" and r.json()["error"] == "Service Unavailable" for r in during)
        ready = requests.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
        redis_server.start()  # the same port, an empty Redis
        deadline = time.monotonic() + 15
        while requests.get(server.url + "/readyz", timeout=10).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        after = [server.post(payload(COMPLETED, f"outage-{i}")).json() for i in range(3)]
        assert all(answer["images_count"] == 1 for answer in after)  # the retries, each processed once
        assert server.post(payload(COMPLETED, "outage-0")).json() == DUPLICATE
        assert eventually(lambda: server.output().count("Génération réussie"), 4) == 4


def test_metrics_add_up_across_workers(redis_server, tmp_path):
    """With 3 workers, /metrics (served by any of them) counts every worker's notifications."""
    with GunicornServer(tmp_path, shared(redis_server)) as server:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: server.post(payload(COMPLETED, f"metric-{i}")), range(60)))
        for _ in range(5):  # whichever worker answers, the sum is the same
            text = requests.get(server.url + "/metrics", timeout=10).text
            counted = sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                          if s.name == "image_webhook_notifications_total" and s.labels.get("outcome") == "processed")
            assert counted == 60
