"""Operating the service: health probes, Prometheus metrics, request ids, structured logs, shutdown."""

import json
import re
import signal
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from image_webhook.service import EXTENSION
from tests.payloads import COMPLETED, FAILED, PROGRESS, SECRET, URL, payload
from tests.servers import DEFAULT_WORKERS, GunicornServer

AUTH = {"X-Webhook-Secret": SECRET}


def samples(client):
    """{(sample name, sorted labels): value} read back from GET /metrics."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics, name, **labels):
    return metrics.get((name, tuple(sorted(labels.items()))), 0)


class TestHealth:
    def test_liveness(self, prod_client):
        """GET /healthz is 200 {"status": "ok"} without any secret."""
        response = prod_client.get("/healthz")
        assert response.status_code == 200 and response.get_json() == {"status": "ok"}

    def test_readiness(self, prod_client):
        """GET /readyz is 200 while the cleanup thread runs, without any secret."""
        response = prod_client.get("/readyz")
        assert response.status_code == 200 and response.get_json() == {"status": "ready"}

    @pytest.mark.memory_only
    def test_not_ready_when_the_cleanup_thread_is_gone(self, app):
        """GET /readyz is 503 with a reason once the cleanup thread stopped, and reveals no configuration."""
        app.extensions[EXTENSION].maintenance.stop()
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert set(body) == {"status", "reason"} and body["status"] == "unavailable" and body["reason"]


class TestMetrics:
    def test_known_sequence_reads_back_exactly(self, prod_client, backend):
        """2 completed, 1 duplicate, 1 failed, 1 invalid, 1 unauthorized: exactly those counts."""
        for job in ("m-1", "m-2"):
            assert prod_client.post(URL, json=payload(COMPLETED, job), headers=AUTH).status_code == 200
        assert (
            prod_client.post(URL, json=payload(COMPLETED, "m-1"), headers=AUTH).get_json()["message"]
            == "Job déjà traité"
        )
        assert prod_client.post(URL, json=payload(FAILED, "m-3"), headers=AUTH).status_code == 200
        assert prod_client.post(URL, json=payload(COMPLETED, "m-4", data={}), headers=AUTH).status_code == 400
        assert prod_client.post(URL, json=payload(COMPLETED, "m-5")).status_code == 401
        m = samples(prod_client)
        name = "image_webhook_notifications_total"
        assert value(m, name, status="completed", outcome="processed") == 2
        assert value(m, name, status="completed", outcome="duplicate") == 1
        assert value(m, name, status="failed", outcome="processed") == 1
        assert value(m, name, status="completed", outcome="missing_images") == 1
        assert value(m, name, status="unknown", outcome="unauthorized") == 1
        assert sum(v for (n, _), v in m.items() if n == name) == 6
        assert value(m, "image_webhook_processing_seconds_count", status="completed") == 2
        assert value(m, "image_webhook_processing_seconds_count", status="failed") == 1
        assert value(m, "image_webhook_images_total", model="gemini-2.0-flash-exp") == 2
        assert value(m, "image_webhook_image_bytes_total", model="gemini-2.0-flash-exp") == 2 * 2048576
        assert value(m, "image_webhook_generation_seconds_sum", model="gemini-2.0-flash-exp") == 25.0
        # the memory store remembers the three terminal jobs; in front of a database only the completed ones;
        # Redis counts its own
        assert value(m, "image_webhook_idempotence_entries") == {"memory": 3, "redis": 0}.get(backend, 2)

    def test_a_flood_of_distinct_values_adds_no_series(self, client):
        """Distinct invalid statuses, job ids and headers never become label values."""
        client.post(URL, json={"job_id": "first", "status": "bogus-0"})
        before = set(samples(client))
        for i in range(200):
            client.post(
                URL,
                json={"job_id": f"flood-{i}", "status": f"bogus-{i}"},
                headers={"X-Request-ID": f"r{i}", "User-Agent": f"agent-{i}"},
            )
        assert set(samples(client)) == before

    def test_model_names_are_capped(self, client):
        """At most 20 model names become labels; the others count as 'other'."""
        for i in range(30):
            body = payload(COMPLETED, f"model-{i}")
            body["data"]["metadata"]["model_name"] = f"model-{i}"
            client.post(URL, json=body)
        models = {
            dict(labels)["model"]
            for (name, labels), _ in samples(client).items()
            if name == "image_webhook_images_total"
        }
        assert len(models) == 21 and "other" in models

    @pytest.mark.memory_only
    def test_cleanup_and_evictions_are_counted(self, make_app, clock):
        """Entries removed by the cleanup, evictions at the bound and the cleanup time are exposed."""
        app = make_app(IDEMPOTENCE_MAX_ENTRIES=2, CLEANUP_INTERVAL=0.01)
        client = app.test_client()
        for i in range(3):
            client.post(URL, json=payload(FAILED, f"ev-{i}"))
        clock.advance(301)
        deadline = time.monotonic() + 5
        while value(samples(client), "image_webhook_idempotence_expired_total") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        m = samples(client)
        assert value(m, "image_webhook_idempotence_evictions_total") == 1
        assert value(m, "image_webhook_idempotence_expired_total") == 2
        assert value(m, "image_webhook_idempotence_last_cleanup_timestamp_seconds") > 0

    def test_metrics_need_no_secret(self, prod_client):
        """GET /metrics is served without the webhook secret, in the Prometheus text format."""
        response = prod_client.get("/metrics")
        assert response.status_code == 200 and response.mimetype == "text/plain"


class TestRequestId:
    def test_incoming_id_is_kept_and_returned(self, client, logs):
        """A well-formed X-Request-ID is returned and stamped on every log line of the request."""
        response = client.post(URL, json=COMPLETED, headers={"X-Request-ID": "req-42.a:b"})
        assert response.headers["X-Request-ID"] == "req-42.a:b"
        mine = [r for r in logs.records if getattr(r, "request_id", None) == "req-42.a:b"]
        assert len(mine) == 5  # 🎨 📦 ✅ 💾 ⏱️
        assert all(r.request_id == "req-42.a:b" for r in logs.records if r.getMessage().startswith(("📦", "⏱️")))

    @pytest.mark.parametrize("status", ["generating", "pending"])
    def test_progress_lines_carry_their_request(self, client, logs, status):
        """The ℹ️ line of an intermediate status, on time or late (after its job completed), carries its request
        id and job id in every mode, a database's included (it decides in the writer's thread)."""
        if status == "pending":
            client.post(URL, json=payload(COMPLETED, "req-progress"))
        client.post(URL, json=payload(PROGRESS, "req-progress", status=status), headers={"X-Request-ID": "req-p"})
        lines = [r for r in logs.records if r.getMessage().startswith("ℹ️ [Image Webhook] Statut intermédiaire")]
        assert [(r.request_id, r.job_id) for r in lines] == [("req-p", "req-progress")]
        assert ("après la fin du job" in lines[0].getMessage()) is (status == "pending")

    @pytest.mark.parametrize("incoming", [None, "", "x" * 129, "bad id", "a;b", "é"])
    def test_missing_or_unsafe_id_is_replaced(self, client, incoming):
        """Without a safe X-Request-ID one is generated (also on errors)."""
        headers = {} if incoming is None else {"X-Request-ID": incoming}
        for response in (client.post(URL, json=COMPLETED, headers=headers), client.get("/nope", headers=headers)):
            generated = response.headers["X-Request-ID"]
            assert generated != incoming and len(generated) == 32


@pytest.fixture
def json_server(tmp_path):
    with GunicornServer(tmp_path, {"APP_ENV": "development", "LOG_FORMAT": "json"}) as server:
        yield server


def test_json_logs_are_one_object_per_line(json_server):
    """LOG_FORMAT=json: every line written (service and gunicorn, access log too) is a JSON object
    with the documented fields."""
    json_server.post(payload(COMPLETED, "json-1"), headers={"X-Request-ID": "json-req"})
    json_server.post(payload(COMPLETED, "json-1"))
    requests.post(json_server.url + URL, data=b"{", headers={"Content-Type": "application/json"}, timeout=5)
    lines = [line for line in json_server.settled_output().splitlines() if line.strip()]
    objects = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    service = [o for o in objects if o["logger"] == "image_webhook"]
    assert {"level", "event", "job_id", "status", "outcome", "processing_time_ms", "request_id", "message"} <= set(
        service[0]
    )
    done = next(o for o in service if o["event"] == "processed")
    assert done["job_id"] == "json-1" and done["status"] == "completed" and done["request_id"] == "json-req"
    assert done["message"].startswith("⏱️ [Image Webhook] Traitement terminé en") and done["processing_time_ms"] > 0
    assert any(o["event"] == "duplicate" and o["outcome"] == "duplicate" for o in service)
    assert any(o["event"] == "rejected" and o["outcome"] == "invalid_json" for o in service)
    access = [o for o in objects if o.get("event") == "access"]
    assert any(o["request_id"] == "json-req" and o["http_status"] == 200 for o in access)


def test_text_logs_keep_the_spec_lines(tmp_path):
    """LOG_FORMAT=text (the default) writes the spec's emoji lines (read once gunicorn stopped: each of its
    workers writes its last lines as it exits, whichever worker served the POST)."""
    with GunicornServer(tmp_path, {"APP_ENV": "development"}) as server:
        server.post(payload(COMPLETED, "text-1"))
    output = server.output()
    for line in (
        "🎨 [Image Webhook] Réception d'un webhook de génération d'images...",
        "📦 [Image Webhook] Payload reçu: ",
        "✅ [Image Webhook] Génération réussie: ",
        "💾 [Image Webhook] Images générées: ",
        "⏱️ [Image Webhook] Traitement terminé en ",
    ):
        assert line in output


def test_sigterm_lets_the_slow_request_finish(tmp_path):
    """SIGTERM during a slow request: it completes with 200, the worker says how many jobs it processed,
    and gunicorn exits 0."""
    server = GunicornServer(
        tmp_path, {"APP_ENV": "development", "SLOW_JOB_SECONDS": "2"}, app="tests.slow_app:create()"
    )
    server.start()
    answers = []
    poster = threading.Thread(target=lambda: answers.append(server.post(payload(COMPLETED, "slow"), timeout=30)))
    poster.start()
    time.sleep(0.5)  # the request is in the handler, which sleeps 2 s
    server.process.send_signal(signal.SIGTERM)
    poster.join()
    assert server.stop(timeout=30) == 0
    assert answers[0].status_code == 200 and answers[0].json()["images_count"] == 1
    counts = shutdown_counts(server.output().splitlines())
    assert len(counts) == DEFAULT_WORKERS and sorted(counts) == [0] * (DEFAULT_WORKERS - 1) + [1]


def test_json_logs_stay_json_through_shutdown(tmp_path):
    """LOG_FORMAT=json: the worker's shutdown line is JSON too (regression: it came out as text)."""
    server = GunicornServer(tmp_path, {"APP_ENV": "development", "LOG_FORMAT": "json"}).start()
    server.post(payload(COMPLETED, "json-stop"))
    assert server.stop() == 0
    objects = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    shutdowns = [o for o in objects if o["logger"] == "image_webhook" and o["event"] == "shutdown"]
    assert len(shutdowns) == DEFAULT_WORKERS and sum(shutdown_counts(o["message"] for o in shutdowns)) == 1


def shutdown_counts(lines):
    """The jobs each worker says it processed, from its shutdown line."""
    return [int(m.group(1)) for line in lines if (m := re.search(r"Arrêt du worker: (\d+) job\(s\)", line))]
