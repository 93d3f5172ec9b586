"""The shared Redis store, end to end: gunicorn instances with several workers against a real redis-server."""

import contextlib
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from image_webhook.storage.errors import StoreUnavailable
from image_webhook.storage.idempotence.redis import RedisStore
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
    # no database: its records would answer duplicates before the Redis store is asked
    return {
        "APP_ENV": "development",
        "REDIS_URL": redis_server.url,
        "WEB_CONCURRENCY": "3",
        "DATABASE_URL": "",
        **extra,
    }


def test_memory_store_refuses_several_workers(tmp_path):
    """WEB_CONCURRENCY above 1 with the memory store stops gunicorn, naming the variable."""
    code, output = run_to_exit(tmp_path, {"APP_ENV": "development", "WEB_CONCURRENCY": "2", "DATABASE_URL": ""})
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
            return sessions.s.post(
                server.url + "/api/webhooks/image-completion", json=payload(COMPLETED, f"shared-{job}"), timeout=30
            ).json()

        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(post, range(2000)))
        assert sum(answer.get("images_count") == 1 for answer in answers) == 2000
        logged = eventually(
            lambda: a.output().count("Génération réussie") + b.output().count("Génération réussie"), 2001
        )
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
            counted = sum(
                s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "image_webhook_notifications_total" and s.labels.get("outcome") == "processed"
            )
            assert counted == 60


@contextlib.contextmanager
def frozen(server):
    """redis-server stopped (SIGSTOP) for the block: to its clients, a Redis that stalls or a link that hangs."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@pytest.mark.parametrize("stall", [0.5, 1.5, 4])
def test_a_stalled_redis_never_calls_a_new_job_a_duplicate(redis_server, tmp_path, stall):
    """Eight new jobs arriving while Redis stalls are each processed or refused with a 503, never called
    duplicates, and the sender's retries after the stall leave each processed exactly once."""
    with GunicornServer(tmp_path, shared(redis_server, REDIS_TIMEOUT="1")) as server:
        with ThreadPoolExecutor(12) as pool:  # every worker holds open connections: the claims are sent, not held
            warm = list(pool.map(lambda i: server.post(payload(COMPLETED, f"warm-{i}")), range(48)))
        assert all(answer.json().get("images_count") == 1 for answer in warm), [a.text for a in warm if not a.ok]
        jobs = [f"stall-{i}" for i in range(8)]
        with ThreadPoolExecutor(len(jobs)) as pool, frozen(redis_server):
            pending = [pool.submit(server.post, payload(COMPLETED, job), timeout=30) for job in jobs]
            time.sleep(stall)
        first = [future.result() for future in pending]
        for answer in first:
            assert answer.status_code in (200, 503), answer.text
            if answer.status_code == 503:
                assert answer.headers["Retry-After"] == "5"
            else:
                assert answer.json().get("images_count") == 1, answer.text
        if stall < 1:  # shorter than REDIS_TIMEOUT: only a delay
            assert {answer.status_code for answer in first} == {200}
        if stall > 3:  # longer than every attempt of the claim: the path this test is about
            assert any(answer.status_code == 503 for answer in first)
        retries = [server.post(payload(COMPLETED, job)) for job in jobs]
        for answer, retry in zip(first, retries, strict=True):
            if answer.status_code == 503:
                assert retry.json().get("images_count") == 1, retry.text
            else:
                assert retry.json() == DUPLICATE, retry.text
        processed = 48 + len(jobs)  # the warm-up's and one per job
        assert eventually(lambda: server.output().count("Génération réussie"), processed) == processed
        assert server.settled_output().count("Génération réussie") == processed


def calls(probe, command):
    """How many times Redis ran `command`, scripts' calls included (INFO commandstats)."""
    return probe.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_a_claim_that_runs_too_late_sets_nothing(redis_server):
    """A claim sent to a Redis stalled past the timeout raises StoreUnavailable, and its script, run when
    Redis resumes, reads the clock but sets no key."""
    store = RedisStore(url=redis_server.url, prefix="late:", window=60, timeout=0.2)
    probe = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert store.claim("warm").new  # the store's connection is open: the claim is sent, not held in a handshake
    times, sets = calls(probe, "time"), calls(probe, "set")
    with frozen(redis_server), pytest.raises(StoreUnavailable):
        store.claim("job")
    assert eventually(lambda: calls(probe, "time"), times + 1) > times  # the queued script ran after the stall
    assert probe.get("late:job") is None
    assert calls(probe, "set") == sets


class Link:
    """A loopback TCP relay to Redis that can be cut (bytes dropped both ways), or cut just after the next
    command went through, so that the command runs but its reply is lost."""

    def __init__(self, port):
        self.port = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.state = "open"  # "open", "cut after a command" or "cut"
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            server = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._relay, args=(source, sink, upstream), daemon=True).start()

    def _relay(self, source, sink, upstream):
        source.settimeout(0.1)
        with contextlib.suppress(OSError):
            while not self.stopping.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if upstream and self.state == "cut after a command":
                    self.state = "cut"
                    sink.sendall(data)
                elif self.state != "cut":
                    sink.sendall(data)
        for end in (source, sink):
            end.close()

    def close(self):
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def link(redis_server):
    relay = Link(redis_server.port)
    yield relay
    relay.close()


def test_a_claim_whose_reply_was_lost_is_deleted_once_redis_answers(redis_server, link):
    """A claim that ran in Redis but lost its reply raises StoreUnavailable, and its key is deleted as soon
    as Redis can be reached again, so the sender's retry is processed."""
    store = RedisStore(url=link.url, prefix="lost:", window=60, timeout=0.2)
    probe = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert store.claim("warm").new  # the next claim is one command on an open connection
    link.state = "cut after a command"
    with pytest.raises(StoreUnavailable):
        store.claim("job")
    assert probe.get("lost:job") is not None  # it ran: the link was cut after it got through
    link.state = "open"
    assert eventually(lambda: probe.get("lost:job") is None, True) is True
    assert store.claim("job").new


def test_a_release_refused_by_a_cut_link_is_done_once_redis_answers(redis_server, link):
    """A release that cannot reach Redis raises StoreUnavailable, and the claim is deleted as soon as Redis
    can be reached again, so the sender's retry is processed."""
    store = RedisStore(url=link.url, prefix="cut:", window=60, timeout=0.2)
    probe = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    claim = store.claim("job")
    link.state = "cut"
    with pytest.raises(StoreUnavailable):
        store.release("job", claim)
    assert probe.get("cut:job") is not None
    link.state = "open"
    assert eventually(lambda: probe.get("cut:job") is None, True) is True
    assert store.claim("job").new
