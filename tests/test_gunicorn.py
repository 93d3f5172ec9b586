"""End to end through the real gunicorn and gunicorn.conf.py, over loopback HTTP."""
import json
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
import requests

from tests.payloads import COMPLETED, SECRET, payload
from tests.servers import GunicornServer, run_to_exit

PRODUCTION = {"APP_ENV": "production", "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def dev_server(tmp_path):
    with GunicornServer(tmp_path, {"APP_ENV": "development"}) as server:
        yield server


@pytest.fixture
def prod_server(tmp_path):
    with GunicornServer(tmp_path, PRODUCTION) as server:
        yield server


@pytest.mark.parametrize("env, variable", [
    ({"APP_ENV": "production"}, "WEBHOOK_SECRET"),
    ({}, "WEBHOOK_SECRET"),
    ({"NODE_ENV": "production"}, "WEBHOOK_SECRET"),
    ({"APP_ENV": "development", "IDEMPOTENCE_WINDOW": "abc"}, "IDEMPOTENCE_WINDOW"),
    ({"APP_ENV": "development", "MAX_CONTENT_LENGTH": "-5"}, "MAX_CONTENT_LENGTH"),
    ({"APP_ENV": "staging"}, "APP_ENV"),
])
def test_bad_configuration_stops_gunicorn_naming_the_variable(tmp_path, env, variable):
    """gunicorn exits non-zero, at once, with a message naming the variable, instead of serving."""
    code, output = run_to_exit(tmp_path, env)
    assert code != 0
    assert variable in output
    assert "Booting worker" not in output


def test_production_over_http(prod_server):
    """In production over HTTP: no secret 401, wrong secret 401, right secret 200."""
    assert prod_server.post(COMPLETED).status_code == 401
    assert prod_server.post(COMPLETED, headers={"X-Webhook-Secret": "nope"}).json() == {"error": "Unauthorized"}
    response = prod_server.post(COMPLETED, headers={"X-Webhook-Secret": SECRET})
    assert response.status_code == 200 and response.json()["images_count"] == 1
    assert response.headers["Content-Type"].startswith("application/json")
    assert SECRET not in prod_server.settled_output()


def test_concurrent_duplicates_are_processed_exactly_once(dev_server):
    """64 simultaneous posts of one new job: exactly one is processed, 63 are 'Job déjà traité'."""
    barrier = Barrier(64)
    body = payload(COMPLETED, "race-64")

    def post(_):
        barrier.wait()
        return dev_server.post(body).json()

    with ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(post, range(64)))
    assert sum(a.get("images_count") == 1 for a in answers) == 1
    assert sum(a == {"success": True, "message": "Job déjà traité"} for a in answers) == 63
    assert dev_server.settled_output().count("✅ [Image Webhook] Génération réussie") == 1


@pytest.mark.parametrize("data", [b"{", b"[" * 200_000, b"\xff" * 100, b'{"status": "completed"}'])
def test_bad_body_does_not_kill_the_worker(dev_server, data):
    """A hostile body gets a JSON 400 and the same worker goes on serving valid notifications."""
    response = requests.post(dev_server.url + "/api/webhooks/image-completion", data=data,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400 and "error" in response.json()
    assert dev_server.post(payload(COMPLETED, "after-bad-body")).status_code == 200
    assert "Booting worker" in dev_server.output() and dev_server.output().count("Booting worker") == 1


def test_unknown_route_and_method_are_json(dev_server):
    """gunicorn serves the app's JSON 404 and 405, not an HTML page."""
    assert requests.get(dev_server.url + "/nope", timeout=5).json()["error"] == "Not Found"
    response = requests.get(dev_server.url + "/api/webhooks/image-completion", timeout=5)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"] == "Method Not Allowed"


def test_sigterm_stops_cleanly(tmp_path):
    """SIGTERM stops gunicorn with exit code 0."""
    server = GunicornServer(tmp_path, {"APP_ENV": "development"}).start()
    assert server.post(payload(COMPLETED, "before-stop")).status_code == 200
    assert server.stop() == 0
    assert "Logging error" not in server.output()  # regression: records without a process id broke gunicorn's format


@pytest.mark.parametrize("mode", ["secret", "signature", "any"])
@pytest.mark.parametrize("env", ["development", "production"])
def test_webhook_auth_modes_through_gunicorn(tmp_path, mode, env):
    """Each WEBHOOK_AUTH mode, in each environment, end to end: what passes and what is a 401."""
    from tests.test_signatures import KEY_A, KEY_B, signed_headers

    config = {"APP_ENV": env, "WEBHOOK_AUTH": mode, "WEBHOOK_SECRET": SECRET, "WEBHOOK_SIGNING_SECRET": KEY_A}
    with GunicornServer(tmp_path, config) as server:
        def status(job, headers):
            body = json.dumps(payload(COMPLETED, job)).encode()
            extra = signed_headers(body, key=headers.pop("key"), message_id=job) if "key" in headers else {}
            return requests.post(server.url + "/api/webhooks/image-completion", data=body, timeout=10,
                                 headers={"Content-Type": "application/json", **headers, **extra}).status_code

        header_ok = mode in ("secret", "any")
        signature_ok = mode in ("signature", "any")
        assert status("e2e-header", {"X-Webhook-Secret": SECRET}) == (200 if header_ok or env == "development" else 401)
        assert status("e2e-signed", {"key": KEY_A}) == (200 if signature_ok or env == "development" else 401)
        assert status("e2e-none", {}) == (401 if env == "production" else 200)
        assert status("e2e-bad-header", {"X-Webhook-Secret": "wrong"}) == (401 if header_ok else status_without_check(env))
        assert status("e2e-bad-signature", {"key": KEY_B}) == (401 if signature_ok else status_without_check(env))


def status_without_check(env):
    """A credential of a scheme the mode does not use is ignored: the request counts as unauthenticated."""
    return 401 if env == "production" else 200
